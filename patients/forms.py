from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.forms import formset_factory
from django.utils.text import slugify

from analysis.form import RULES
from patients.models import Exercise, Patient, Protocol, Side, Therapist
from patients.services import PatientFields


class EmailLoginForm(AuthenticationForm):
    """Logins are e-mail addresses, stored in lower case: accept them typed in any case."""

    def clean_username(self) -> str:
        return str(self.cleaned_data["username"]).strip().lower()


class DateInput(forms.DateInput):
    input_type = "date"


class PatientForm(forms.Form):
    first_name = forms.CharField(max_length=150)
    last_name = forms.CharField(max_length=150)
    email = forms.EmailField(help_text="The patient's login; the invitation goes here.")
    date_of_birth = forms.DateField(required=False, widget=DateInput)
    condition = forms.CharField(max_length=200, help_text="Diagnosis or reason for referral")
    affected_side = forms.ChoiceField(choices=Side.choices)
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    @classmethod
    def for_patient(cls, patient: Patient, data: Any = None) -> "PatientForm":
        user = patient.user
        initial = {
            "first_name": user.first_name,
            "last_name": user.last_name,
            "email": user.email,
            "date_of_birth": patient.date_of_birth,
            "condition": patient.condition,
            "affected_side": patient.affected_side,
            "notes": patient.notes,
        }
        return cls(data, initial=initial)

    def patient_fields(self) -> PatientFields:
        return PatientFields(**self.cleaned_data)


class ExerciseForm(forms.ModelForm):
    """A custom exercise. Its measured form faults are picked from the rules the analysis has
    (analysis.form.RULES), each with its threshold; others are the therapist's to observe."""

    form_faults_text = forms.CharField(
        label="Faults you observe yourself",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line. Listed for the patient's record; never flagged automatically.",
    )

    class Meta:
        model = Exercise
        fields = [
            "name",
            "joint",
            "motion",
            "proximal_point",
            "vertex_point",
            "distal_point",
            "raw_at_zero_deg",
            "increases_with_motion",
            "normal_min_deg",
            "normal_max_deg",
            "plane",
            "camera_view",
            "angle_space",
            "angle_space_reason",
            "laterality",
            "default_target_deg",
            "rest_deg",
            "peak_deg",
            "min_duration_s",
            "min_amplitude_deg",
            "rests_at_either_end",
            "outward_is_concentric",
            "instructions",
        ]
        widgets = {
            "instructions": forms.Textarea(attrs={"rows": 3}),
            "angle_space_reason": forms.Textarea(attrs={"rows": 2}),
        }

    def __init__(self, *args: Any, therapist: Therapist, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.therapist = therapist
        self.instance.owner = therapist
        picked = {
            fault["code"]: fault
            for fault in self.instance.form_faults
            if fault["code"] in RULES and not fault.get("observed_by_therapist")
        }
        for code, rule in RULES.items():
            fault = picked.get(code)
            self.fields[f"check_{code}"] = forms.BooleanField(
                required=False, initial=fault is not None, label=f"Check: {rule.label}"
            )
            view = f"; needs a {rule.view} view" if rule.view else ""
            self.fields[f"threshold_{code}"] = forms.FloatField(
                required=False,
                initial=fault.get("threshold") if fault else None,
                label=f"Threshold ({rule.unit})",
                help_text=f"Empty: the rule's {rule.threshold:g}{view}",
            )
        observed = [f for f in self.instance.form_faults if f["code"] not in picked]
        if observed:
            self.initial["form_faults_text"] = "\n".join(fault["label"] for fault in observed)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        name = cleaned.get("name", "")
        slug = slugify(name).replace("-", "_")[:60]
        if not slug:
            self.add_error("name", "The name needs at least one letter or digit.")
        clash = Exercise.objects.filter(owner=self.therapist, slug=slug).exclude(
            pk=self.instance.pk
        )
        if clash.exists():
            self.add_error("name", "You already have an exercise with this name.")
        self.instance.slug = slug
        lines = [line.strip() for line in cleaned.get("form_faults_text", "").splitlines()]
        measured = [
            {"code": code, "label": rule.label, "threshold": cleaned.get(f"threshold_{code}")}
            for code, rule in RULES.items()
            if cleaned.get(f"check_{code}")
        ]
        observed = [
            {"code": slugify(line).replace("-", "_"), "label": line, "observed_by_therapist": True}
            for line in lines
            if line
        ]
        self.instance.form_faults = measured + observed
        return cleaned


class ProtocolForm(forms.Form):
    name = forms.CharField(max_length=120)
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class PrescriptionLineForm(forms.Form):
    id = forms.UUIDField(required=False, widget=forms.HiddenInput)
    exercise = forms.ModelChoiceField(queryset=Exercise.objects.none())
    side = forms.ChoiceField(choices=Side.choices)
    sets = forms.IntegerField(min_value=1, max_value=10, initial=3)
    reps = forms.IntegerField(min_value=1, max_value=50, initial=10)
    hold_s = forms.IntegerField(min_value=0, max_value=120, initial=0, label="Hold (s)")
    rest_s = forms.IntegerField(min_value=0, max_value=600, initial=60, label="Rest (s)")
    target_rom_deg = forms.FloatField(
        min_value=0,
        max_value=180,
        required=False,
        label="Target (°)",
        help_text="Empty: the exercise's default target.",
    )
    sessions_per_week = forms.IntegerField(min_value=1, max_value=14, initial=3, label="Per week")
    notes = forms.CharField(max_length=300, required=False)

    def __init__(self, *args: Any, therapist: Therapist, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        exercise_field = self.fields["exercise"]
        # Narrows the type for mypy (the field is declared a ModelChoiceField above): not a check.
        assert isinstance(exercise_field, forms.ModelChoiceField)  # nosec B101 # see the line above
        exercise_field.queryset = Exercise.objects.visible_to(therapist)


PrescriptionFormSet = formset_factory(
    PrescriptionLineForm, extra=0, can_delete=True, min_num=1, validate_min=True
)


def prescription_formset(
    *, therapist: Therapist, protocol: Protocol | None = None, data: Any = None
) -> Any:
    initial = []
    if protocol is not None:
        initial = [
            {
                "id": line.pk,
                "exercise": line.exercise_id,
                "side": line.side,
                "sets": line.sets,
                "reps": line.reps,
                "hold_s": line.hold_s,
                "rest_s": line.rest_s,
                "target_rom_deg": line.target_rom_deg,
                "sessions_per_week": line.sessions_per_week,
                "notes": line.notes,
            }
            for line in protocol.prescriptions.order_by("position")
        ]
    return PrescriptionFormSet(
        data, initial=initial, prefix="lines", form_kwargs={"therapist": therapist}
    )


def formset_lines(formset: Any) -> list[dict[str, Any]]:
    """The kept lines of a valid prescription formset, in their order on the page."""
    return [
        form.cleaned_data
        for form in formset.forms
        if form.cleaned_data and not form.cleaned_data.get("DELETE")
    ]


class AssignmentForm(forms.Form):
    protocol = forms.ModelChoiceField(queryset=Protocol.objects.none())
    start_date = forms.DateField(widget=DateInput)
    end_date = forms.DateField(widget=DateInput)

    def __init__(self, *args: Any, therapist: Therapist, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        protocol_field = self.fields["protocol"]
        # Narrows the type for mypy (the field is declared a ModelChoiceField above): not a check.
        assert isinstance(protocol_field, forms.ModelChoiceField)  # nosec B101 # see the line above
        protocol_field.queryset = Protocol.objects.filter(therapist=therapist)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("start_date"), cleaned.get("end_date")
        if start and end and end < start:
            self.add_error("end_date", "The end date cannot be before the start date.")
        return cleaned
