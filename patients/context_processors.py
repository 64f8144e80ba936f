from typing import Any

from django.http import HttpRequest

from patients.selectors import patient_of, therapist_of


def role(request: HttpRequest) -> dict[str, Any]:
    """`role` is "therapist", "patient" or None, for the navigation."""
    user = request.user
    if therapist_of(user):
        return {"role": "therapist"}
    if patient_of(user):
        return {"role": "patient"}
    return {"role": None}
