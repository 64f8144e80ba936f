"""PainReport and Alert belong to sessions now (exercise_sessions 0006): this app forgets them.
State only: the tables stay, with their data, under their old names (the models' db_table)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('patients', '0005_exercise_max_velocity'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name='painreport', name='patient'),
                migrations.RemoveField(model_name='painreport', name='session'),
                migrations.DeleteModel(name='Alert'),
                migrations.DeleteModel(name='PainReport'),
            ],
            database_operations=[],
        ),
    ]
