"""Live sockets follow their user's sign-in: when it ends they close with 4403 (sessions.protocol).

Every LiveSessionConsumer joins its user's group (`user_group`). These send ``user.signed_out``
to it through the channel layer (with Redis, the sockets of every web process hear it):

- a sign-out (`user_logged_out`, also sent by the idle and lifetime sign-outs of
  web/signin_lifetime.py) closes the sockets of that browser session. The user's other
  browsers stay signed in, their pages and their sockets alike.
- a deactivation (the user saved with is_active False, once committed) closes all of them.

Some endings send no event: a session that just times out, a session row deleted (clearsessions,
by hand), the password changed elsewhere, the user deleted. So each consumer also asks
`live_access_problem` every LIVE_ACCESS_CHECK_S; that check also writes the socket's activity.
"""

import asyncio
import functools
import time
from importlib import import_module
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.db import transaction
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare

from web.signin_lifetime import signin_ending, signin_touch


def user_group(user_id: Any) -> str:
    return f"live-user-{user_id}"


def notify_user_signed_out(*, user_id: Any, session_key: str | None) -> None:
    """Close the user's live sockets: those of one browser session, or all (None)."""
    layer = get_channel_layer()
    if layer is None:
        return
    group, message = user_group(user_id), {"type": "user.signed_out", "session_key": session_key}
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # plain synchronous code (requests, the admin, commands)
        async_to_sync(layer.group_send)(group, message)
        return
    # Synchronous code called on an event loop's own thread, where async_to_sync refuses to run:
    # the loop sends it as soon as this code gives control back.
    task = loop.create_task(layer.group_send(group, message))
    _sending.add(task)  # a task nobody references may be garbage-collected before it runs
    task.add_done_callback(_sending.discard)


_sending: set[asyncio.Task[None]] = set()


def live_access_problem(
    *, session_key: str | None, user_id: Any, frames_flowed: bool
) -> str | None:
    """Why a live socket's sign-in no longer holds, or None. When frames flowed since the last
    check they count as activity: written to the session at most every `touch_every_s()`."""
    store = _session_store(session_key)
    if store is None or not dict(store.items()):
        return "session_gone"  # deleted, flushed, or expired in Django's own terms
    if str(store.get(SESSION_KEY)) != str(user_id):
        return "other_user"
    now = time.time()
    if (ending := signin_ending(data=store, now=now)) is not None:
        return ending.value
    user = get_user_model()._default_manager.filter(pk=user_id).first()
    if user is None or not user.is_active:
        return "inactive"
    if not constant_time_compare(store.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()):
        return "password_changed"
    if frames_flowed and signin_touch(session=store, now=now, every_s=touch_every_s()):
        try:
            # Writes the whole session: a page request changing it in the same instant could
            # lose its change. Once a minute at most, and live pages send hardly any requests.
            store.save()
        except UpdateError:
            return "session_gone"  # deleted since it was read: never bring it back
    return None


def touch_every_s() -> float:
    """Often enough that a patient exercising never times out, rarely enough to cost nothing."""
    return min(settings.LIVE_ACTIVITY_TOUCH_S, settings.SESSION_IDLE_TIMEOUT_S / 4)


def _session_store(session_key: str | None) -> SessionBase | None:
    if not session_key:
        return None
    store: SessionBase = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return store


# --- Signal receivers (ExerciseSessionsConfig.ready) ---------------------------------------------
def on_user_logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    session_key = session.session_key if session is not None else None
    if user is not None and session_key:
        notify_user_signed_out(user_id=user.pk, session_key=session_key)


def on_user_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    if not instance.is_active:
        transaction.on_commit(
            functools.partial(notify_user_signed_out, user_id=instance.pk, session_key=None)
        )
