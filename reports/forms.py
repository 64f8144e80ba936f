import datetime

from django import forms
from django.conf import settings
from django.http import QueryDict
from django.utils import timezone

MAX_PERIOD_DAYS = 366 * 2


class PeriodForm(forms.Form):
    """A reporting period: both days included, not in the future."""

    first_day = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    last_day = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))

    @classmethod
    def default(cls, data: QueryDict | None = None) -> "PeriodForm":
        """Bound to `data` when it has anything in it; otherwise the last 30 days."""
        today = timezone.localdate()
        first = today - datetime.timedelta(days=settings.REPORT_DEFAULT_DAYS - 1)
        return cls(data or None, initial={"first_day": first, "last_day": today})

    def clean(self) -> dict:
        data = super().clean() or {}
        first, last = data.get("first_day"), data.get("last_day")
        if first and last:
            if last < first:
                raise forms.ValidationError("The period ends before it starts.")
            if last > timezone.localdate():
                raise forms.ValidationError("The period cannot end in the future.")
            if (last - first).days >= MAX_PERIOD_DAYS:
                raise forms.ValidationError("A period can cover at most two years.")
        return data

    def period(self) -> tuple[datetime.date, datetime.date]:
        if self.is_bound and self.is_valid():
            return self.cleaned_data["first_day"], self.cleaned_data["last_day"]
        return self.initial["first_day"], self.initial["last_day"]


class ReportForm(PeriodForm):
    assessment = forms.CharField(
        label="Assessment",
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="Your clinical assessment, as it will appear in the report.",
    )
    plan = forms.CharField(
        label="Plan",
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
