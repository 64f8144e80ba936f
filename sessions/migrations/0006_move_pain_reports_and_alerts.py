"""PainReport and Alert move here from the patients app (patients 0006), state only: the tables
keep their names and their rows. Their content types move with them, so that admin history and
permissions still point at them."""

import django.core.validators
import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models


MOVED = ('painreport', 'alert')


def _move_content_types(apps, schema_editor, source, target):
    content_type = apps.get_model('contenttypes', 'ContentType')
    rows = content_type.objects.using(schema_editor.connection.alias)
    for model in MOVED:
        # A fresh database has neither row yet (post_migrate makes them); never make a duplicate.
        if not rows.filter(app_label=target, model=model).exists():
            rows.filter(app_label=source, model=model).update(app_label=target)


def forwards(apps, schema_editor):
    _move_content_types(apps, schema_editor, 'patients', 'exercise_sessions')


def backwards(apps, schema_editor):
    _move_content_types(apps, schema_editor, 'exercise_sessions', 'patients')


class Migration(migrations.Migration):

    dependencies = [
        ('exercise_sessions', '0005_repetition_quality_and_sides'),
        ('patients', '0006_move_pain_reports_and_alerts'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Alert',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('kind', models.CharField(choices=[('missed_sessions', 'Missed sessions'), ('rom_falling', 'ROM falling'), ('rom_stalled', 'ROM stalled'), ('pain_rising', 'Pain rising'), ('form_flags', 'Repeated form flags')], max_length=20)),
                        ('key', models.CharField(blank=True, max_length=120)),
                        ('message', models.CharField(help_text='One sentence with the numbers behind it', max_length=300)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('acknowledged_at', models.DateTimeField(blank=True, null=True)),
                        ('acknowledged_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('patient', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='alerts', to='patients.patient')),
                    ],
                    options={
                        'db_table': 'patients_alert',
                        'ordering': ['-created_at'],
                        'constraints': [models.UniqueConstraint(condition=models.Q(('acknowledged_at__isnull', True), models.Q(('key', ''), _negated=True)), fields=('patient', 'key'), name='unique_open_alert_per_key')],
                    },
                ),
                migrations.CreateModel(
                    name='PainReport',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('pain_nrs', models.PositiveSmallIntegerField(help_text='0 = no pain, 10 = worst pain imaginable', validators=[django.core.validators.MaxValueValidator(10)])),
                        ('effort_borg', models.FloatField(choices=[(0.0, '0 - nothing at all'), (0.5, '0.5 - very, very weak'), (1.0, '1 - very weak'), (2.0, '2 - weak'), (3.0, '3 - moderate'), (4.0, '4 - somewhat strong'), (5.0, '5 - strong'), (6.0, '6'), (7.0, '7 - very strong'), (8.0, '8'), (9.0, '9'), (10.0, '10 - very, very strong (maximal)')])),
                        ('comment', models.CharField(blank=True, max_length=500)),
                        ('reported_at', models.DateTimeField(auto_now_add=True)),
                        ('patient', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='pain_reports', to='patients.patient')),
                        ('session', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='pain_report', to='exercise_sessions.exercisesession')),
                    ],
                    options={
                        'db_table': 'patients_painreport',
                        'ordering': ['-reported_at'],
                        'constraints': [models.CheckConstraint(condition=models.Q(('pain_nrs__lte', 10)), name='pain_nrs_0_to_10'), models.CheckConstraint(condition=models.Q(('effort_borg__gte', 0), ('effort_borg__lte', 10)), name='effort_borg_0_to_10')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forwards, backwards),
    ]
