import datetime
from dataclasses import dataclass
from typing import Any, cast

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from patients.models import Assignment, Exercise, Patient, Prescription, Side, Therapist
from sessions.models import BORG_CR10_CHOICES, VideoUpload
from sessions.uploads import (
    ACCEPTED,
    ANALYSERS,
    EMPTY,
    StoredVideo,
    UploadRefused,
    VideoProbe,
    probe_video,
    size_words,
)


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


# --- Uploaded recordings -------------------------------------------------------------------------
@dataclass(frozen=True)
class Chosen:
    """What an upload form decided: the recording's exercise, side and purpose."""

    exercise: Exercise
    side: str
    prescription: Prescription | None
    purpose: str


def _line_label(line: Prescription) -> str:
    return (
        f"{line.exercise.name} ({line.get_side_display().lower()}), "
        f"{line.sets} × {line.reps}, aim for {line.target_rom_deg:.0f}°"
    )


class RecordingForm(forms.Form):
    """The recording of an upload form. VideoUploadHandler stored the file (or says why not,
    `refusal`); it is probed here, so that most errors show on the form at once."""

    video = forms.FileField(
        label="Recording",
        required=False,  # its own message below, also when the handler refused the file
        widget=forms.FileInput(attrs={"accept": "video/*,.mp4,.mov,.m4v,.webm,.mkv,.avi"}),
        error_messages={"empty": EMPTY},
    )

    def __init__(self, *args: Any, refusal: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refusal = refusal
        self.probe: VideoProbe | None = None
        minutes = settings.UPLOAD_MAX_DURATION_S // 60
        video = self.fields["video"]
        video.help_text = (
            f"{ACCEPTED}; up to {size_words(settings.UPLOAD_MAX_BYTES)} and {minutes} "
            "minutes. The video is deleted as soon as it is analysed: only the numbers are kept."
        )
        video.widget.attrs["data-max-bytes"] = str(settings.UPLOAD_MAX_BYTES)

    def clean_video(self) -> StoredVideo:
        if self.refusal:
            raise ValidationError(self.refusal)
        video = self.cleaned_data.get("video")
        if not isinstance(video, StoredVideo):
            raise ValidationError("Choose the recording to upload.")
        try:
            self.probe = probe_video(video.path)
        except UploadRefused as refused:
            raise ValidationError(str(refused)) from None
        return video

    def has_choices(self) -> bool:
        return True

    def chosen(self) -> Chosen:
        raise NotImplementedError


def prescriptions_on_plan(*, patient: Patient, today: datetime.date) -> QuerySet[Prescription]:
    protocols = Assignment.objects.active_on(today).filter(patient=patient).values("protocol_id")
    return (
        Prescription.objects.filter(protocol_id__in=protocols)
        .select_related("exercise")
        .order_by("protocol__name", "position")
    )


class PrescriptionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Prescription) -> str:
        return _line_label(obj)


class PatientUploadForm(RecordingForm):
    """A patient's recording of one of the exercises on their plan today."""

    field_order = ["prescription", "video"]

    prescription = PrescriptionChoiceField(
        label="Exercise", queryset=Prescription.objects.none(), empty_label=None
    )

    def __init__(self, *args: Any, patient: Patient, today: datetime.date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast(PrescriptionChoiceField, self.fields["prescription"])
        field.queryset = prescriptions_on_plan(patient=patient, today=today)

    def has_choices(self) -> bool:
        lines = cast(PrescriptionChoiceField, self.fields["prescription"]).queryset
        return lines is not None and lines.exists()

    def chosen(self) -> Chosen:
        line = self.cleaned_data["prescription"]
        return Chosen(line.exercise, line.side, line, VideoUpload.Purpose.SESSION)


class TherapistUploadForm(RecordingForm):
    """A therapist's recording for one of their patients: one of the patient's prescriptions, or
    any exercise of the library, and the side. The purposes offered are those that can be
    analysed (sessions.uploads.ANALYSERS); with one, nothing is asked."""

    field_order = ["exercise", "side", "purpose", "video"]

    exercise = forms.ChoiceField(label="Exercise")
    side = forms.ChoiceField(
        label="Side",
        required=False,
        choices=[("", "As prescribed"), *Side.choices],
        help_text="For an exercise from the library, choose the side.",
    )
    purpose = forms.ChoiceField(
        label="What the recording is for",
        required=False,  # an exercise session unless said otherwise
        help_text="A reference movement is your own performance, for this patient to follow: "
        "only its landmarks are kept. Several people: a group or a pair, each measured apart.",
    )

    def __init__(self, *args: Any, patient: Patient, therapist: Therapist, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        lines = (
            Prescription.objects.filter(protocol__assignments__patient=patient)
            .select_related("exercise")
            .distinct()
            .order_by("protocol__name", "position")
        )
        self._lines = {str(line.pk): line for line in lines}
        self._library = {
            str(exercise.pk): exercise
            for exercise in Exercise.objects.visible_to(therapist).order_by("name")
        }
        cast(forms.ChoiceField, self.fields["exercise"]).choices = [
            ("", "Choose an exercise"),
            (
                f"{patient.full_name}'s prescriptions",
                [(f"line:{pk}", _line_label(line)) for pk, line in self._lines.items()],
            ),
            ("Exercise library", [(f"exercise:{pk}", e.name) for pk, e in self._library.items()]),
        ]
        offered = [choice for choice in VideoUpload.Purpose.choices if choice[0] in ANALYSERS]
        if len(offered) > 1:
            cast(forms.ChoiceField, self.fields["purpose"]).choices = offered
        else:
            del self.fields["purpose"]
        self._chosen: Chosen | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind, _, pk = cleaned.get("exercise", "").partition(":")
        side = cleaned.get("side", "")
        purpose = cleaned.get("purpose") or VideoUpload.Purpose.SESSION
        if kind == "line":
            line = self._lines[pk]
            self._chosen = Chosen(line.exercise, side or line.side, line, purpose)
        elif kind == "exercise" and not side:
            self.add_error("side", "Choose the side for an exercise from the library.")
        elif kind == "exercise":
            self._chosen = Chosen(self._library[pk], side, None, purpose)
        return cleaned

    def chosen(self) -> Chosen:
        if self._chosen is None:
            raise ValueError("chosen() is read from a valid form")
        return self._chosen
