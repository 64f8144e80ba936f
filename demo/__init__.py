"""The demo clinic (`manage.py demo_clinic`): on top of every app, it builds what they all hold."""
