"""Django's `flush`, allowed to empty the audit trail as well.

`flush` empties every table of the database; Django's test runner runs it after each
transactional test. The audit table's triggers refuse that unless the session says the purge is
deliberate (audit/purge.py): this command is the only code that says so. It overrides
django.core's command of the same name (an installed app's command takes precedence).
"""

from typing import Any

from django.core.management.commands import flush

from audit.purge import purge_allowed


class Command(flush.Command):
    help = flush.Command.help + " This includes the audit trail."

    def handle(self, **options: Any) -> None:
        with purge_allowed(using=options["database"]):
            super().handle(**options)
