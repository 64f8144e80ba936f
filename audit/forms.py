from django import forms

from audit.models import AuditEvent


class AuditFilterForm(forms.Form):
    """The staff page's filters: one patient (their UUID) and one action."""

    patient = forms.UUIDField(required=False, label="Patient id")
    action = forms.ChoiceField(
        required=False, choices=[("", "Any action"), *AuditEvent.Action.choices]
    )
