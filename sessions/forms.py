from django import forms

from sessions.models import BORG_CR10_CHOICES


class PainReportForm(forms.Form):
    pain_nrs = forms.TypedChoiceField(
        label="Pain now (0 = no pain, 10 = worst imaginable)",
        choices=[(n, str(n)) for n in range(11)],
        coerce=int,
        widget=forms.RadioSelect,
    )
    effort_borg = forms.TypedChoiceField(
        label="How hard was it? (Borg CR-10)",
        choices=BORG_CR10_CHOICES,
        coerce=float,
        widget=forms.RadioSelect,
    )
    comment = forms.CharField(
        label="Anything your therapist should know? (optional)",
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
