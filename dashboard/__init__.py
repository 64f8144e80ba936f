"""The therapist's pages that combine every layer: the roster (adherence, alerts, last session)
and the patient page (plan, sessions, progress charts, alerts, reports); and where `/` leads."""
