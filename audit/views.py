"""The whole trail, for staff (a patient's own access history is a clinic page: patients.views).
Looking at it is itself recorded."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from audit.forms import AuditFilterForm
from audit.models import AuditEvent
from audit.selectors import EVENTS_PER_PAGE, events_filtered
from audit.services import audit_record


@login_required
@never_cache
def audit_log(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise Http404
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        context = {"form": form, "page": None}
        return render(request, "audit/audit_log.html", context, status=400)
    patient_id, action = form.cleaned_data["patient"], form.cleaned_data["action"]
    audit_record(
        action=AuditEvent.Action.AUDIT_VIEWED,
        request=request,
        patient_id=patient_id,
        detail=f"audit log; action filter: {action or 'any'}",
    )
    events = events_filtered(patient_id=patient_id, action=action)
    page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "audit/audit_log.html", {"form": form, "page": page})
