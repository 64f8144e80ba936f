"""The live session's WebSocket consumer (protocol: sessions.protocol).

It validates, keeps one frame slot, hands the latest frame to a pose worker (sessions.pose_client),
feeds the answer to the pure ExerciseTracker and sends what the tracker says. Repetitions go to
Celery as they are counted; when the connection ends, those counted on it are also stored directly
(idempotently), so that none depends on Redis surviving. Session start, end and summary go through
sessions.services.
"""

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import asdict
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from analysis.kinematics import SIDES, single_side
from analysis.pose.frames import FrameError
from analysis.pose.types import PoseReply, TrackingWire, pose_from_wire
from analysis.repetitions import RepetitionMetrics
from analysis.tracker import ExerciseTracker, Feedback, Stage
from sessions import protocol
from sessions.live_users import live_access_problem, user_group
from sessions.models import ExerciseSession
from sessions.pose_client import PoseClient, pose_client
from sessions.protocol import Frame, ProtocolError, StreamGuard
from sessions.selectors import (
    live_plan,
    live_resume_point,
    live_session_for_user,
    repetition_metrics_of_session,
)
from sessions.services import reps_record_missing, session_add_partial, session_complete
from sessions.socket_cap import (
    service_busy_error,
    socket_claim,
    socket_release,
    stream_claim,
    stream_release,
    too_many_sockets_error,
)
from sessions.tasks import record_rep
from web import logs, metrics
from web.outages import REDIS_AWAY

logger = logging.getLogger(__name__)


def session_group(session_id: Any) -> str:
    return f"live-session-{session_id}"


def notify_session_ended(session_id: Any) -> None:
    """Close the live connections of a session that was ended from another page."""
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(session_group(session_id), {"type": "session.ended"})


class LiveSessionConsumer(AsyncWebsocketConsumer):
    session: ExerciseSession | None = None  # None: refused
    ended = False
    closing = False  # set first when closed for its user (4403, 4429): nothing more is processed
    holds_slot = False  # a slot of the per-user socket cap (sessions.socket_cap)
    watching: asyncio.Task[None] | None = None  # the periodic access check

    # --- connection ------------------------------------------------------------------------------
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except REDIS_AWAY:
            # The channel layer lost Redis (a restart, the network): this connection's channel and
            # groups are gone with it, and no frame can reach a pose worker.
            logger.warning("live connection lost Redis; closing it for the page to reconnect")
            await self.layer_lost()

    async def connect(self) -> None:
        logs.bind_connection(self.scope)  # every log line of this connection carries its id
        session_id = self.scope["url_route"]["kwargs"]["session_id"]
        session = await database_sync_to_async(live_session_for_user)(
            user=self.scope["user"], session_id=session_id
        )
        await self.accept()
        if session is None:
            await self.close(code=protocol.CLOSE_NOT_ALLOWED)
            return
        if not await self.enter():
            return
        plan = await database_sync_to_async(live_plan)(session=session)
        set_number, reps_done = await database_sync_to_async(live_resume_point)(session=session)
        self.session = session
        # The countdown comes once a session: a reconnection after repetitions goes on counting.
        resumed = set_number > 1 or reps_done > 0
        self.tracker = ExerciseTracker(
            plan, set_number=set_number, reps_done_in_set=reps_done, countdown_done=resumed
        )
        self.form_labels = plan.exercise.form_labels
        self.guard = StreamGuard(
            rate_per_s=settings.LIVE_MAX_FRAMES_PER_S, burst=settings.LIVE_FRAME_BURST
        )
        self.pose: PoseClient = pose_client(self.channel_layer, self.channel_name)
        self.tracking: TrackingWire | None = None
        self.slot: Frame | None = None
        self.dropped = 0
        self.serving: asyncio.Task[None] | None = None
        self.reps: list[RepetitionMetrics] = []  # counted on this connection
        self.unsent: list[RepetitionMetrics] = []  # not yet handed to Celery (broker away)
        self.clock_offset_s: float | None = None
        if self.channel_layer is not None:
            await self.channel_layer.group_add(session_group(session.pk), self.channel_name)
        await self.send_message(
            {
                "type": "ready",
                "plan": {
                    "sets": plan.sets,
                    "reps": plan.reps,
                    "target_deg": plan.target_deg,
                    "hold_s": plan.hold_s,
                    "rest_s": plan.rest_s,
                    "turns": list(plan.turns),
                },
                # With both sides measured together, the page colours the right limb.
                "segment": list(plan.exercise.angle.landmarks(single_side(plan.turns[0]))),
                "segments": {side: list(plan.exercise.angle.landmarks(side)) for side in SIDES},
                "camera_view": plan.exercise.camera_view.value,
                "progress": {"set": min(set_number, plan.sets), "reps": reps_done},
            }
        )
        if set_number > plan.sets:  # every set was done before the connection dropped
            await self.finish()

    async def disconnect(self, code: int) -> None:
        await self.leave()
        if self.session is None:
            return
        if self.serving is not None:
            self.serving.cancel()
        if self.channel_layer is not None:
            await self.channel_layer.group_discard(
                session_group(self.session.pk), self.channel_name
            )
        await self.hand_over_reps()
        await self.store_counted_reps()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session is None or self.ended or self.closing:
            return  # refused, finished or closed for its user: nothing more is read
        if bytes_data is not None:
            await self.receive_frame(bytes_data)
        elif text_data is not None:
            await self.receive_control(text_data)

    # --- frames ----------------------------------------------------------------------------------
    async def receive_frame(self, data: bytes) -> None:
        metrics.frame_received()
        frame = protocol.parse_frame(data)
        if isinstance(frame, ProtocolError):
            self.guard.strike()
            metrics.frame_refused(frame)
            return await self.send_error(frame, protocol.ERROR_TEXT[frame], None)
        refused = self.guard.admit(frame, time.monotonic())
        if refused is not None:
            metrics.frame_refused(refused)
            return await self.send_error(refused, protocol.ERROR_TEXT[refused], frame.sequence)
        if problem := protocol.image_problem(frame.image):
            self.guard.strike()
            metrics.frame_refused(problem[0])
            return await self.send_error(*problem, frame.sequence)
        self.guard.accepted()
        self.frames_flowed = True  # activity for the idle timeout (the access check writes it)
        if self.slot is not None:
            self.dropped += 1
            metrics.frame_dropped("replaced")
        self.slot = frame
        if self.serving is None or self.serving.done():
            self.serving = asyncio.create_task(self.serve_frames())

    async def serve_frames(self) -> None:
        """Latest frame wins: one frame at a time goes to a pose worker; whatever arrives
        meanwhile waits in the single slot, replacing the frame that was waiting there."""
        while self.slot is not None and self.tracker.stage is not Stage.DONE:
            frame, self.slot = self.slot, None
            t_s = self.session_time_s(frame.capture_ms)
            with metrics.pose_round_trip():
                answer = await self.pose.estimate(frame.image, t_s, self.tracking)
            if self.closing:
                return  # closed for its user while a worker was at it: the answer is dropped
            if "error" in answer:
                if answer["error"] in _FRAME_ERRORS:  # the frame's own fault (not a JPEG...)
                    self.guard.strike()
                    metrics.frame_refused(answer["error"])
                else:
                    metrics.frame_dropped(answer["error"])
                await self.send_error(answer["error"], answer["message"], frame.sequence)
                continue
            metrics.frame_served()
            self.tracking = answer["tracking"]
            pose = answer["pose"]
            identity = answer.get("identity", "confirmed")
            feedback = self.tracker.update(t_s, pose_from_wire(pose), identity)
            await self.send_message(
                protocol.pose_message(frame.sequence, pose, feedback, self.dropped)
            )
            await self.act_on(feedback)

    async def act_on(self, feedback: Feedback) -> None:
        for message in protocol.event_messages(feedback, self.form_labels):
            await self.send_message(message)
        if feedback.repetition is not None:
            self.reps.append(feedback.repetition)
            self.unsent.append(feedback.repetition)
            await self.hand_over_reps()
        if feedback.partial is not None and feedback.partial.attempted:
            await database_sync_to_async(session_add_partial)(session=self.session)
        if self.tracker.stage is Stage.DONE:
            await self.finish()

    def session_time_s(self, capture_ms: float) -> float:
        """Seconds since the session started, on the page's capture clock."""
        if self.clock_offset_s is None:
            # Narrows the type for mypy: frames are only read once connect() has set the session.
            assert self.session is not None  # nosec B101 # see the line above
            since_start = (timezone.now() - self.session.started_at).total_seconds()
            self.clock_offset_s = since_start - capture_ms / 1000
        return capture_ms / 1000 + self.clock_offset_s

    # --- repetitions and the end -----------------------------------------------------------------
    async def hand_over_reps(self) -> None:
        """Queue the counted repetitions for recording. When the broker is unreachable they stay
        here and go with the next attempt (next repetition, the end, or the disconnect)."""
        while self.unsent:
            rep = self.unsent[0]
            try:
                await database_sync_to_async(_queue_rep)(self.session, rep)
            except Exception:
                logger.exception("could not queue repetition %s/%s", rep.set_number, rep.index)
                return
            self.unsent.pop(0)

    async def store_counted_reps(self) -> None:
        """Store the repetitions counted on this connection that Celery has not stored yet: a
        queue lost with Redis loses none of them. With the database away, Celery still has them
        (its tasks retry)."""
        if not self.reps:
            return
        try:
            await database_sync_to_async(reps_record_missing)(
                session=self.session, reps=list(self.reps)
            )
        except Exception:
            logger.exception("could not store the connection's repetitions; Celery has them")

    async def layer_lost(self) -> None:
        """Stop, store what was counted, and close with 1013: the page reconnects, and its next
        connection resumes from the stored repetitions."""
        self.closing = True
        for task in (getattr(self, "serving", None), self.watching):
            if task is not None:
                task.cancel()
        if self.session is not None and not self.ended:
            await self.store_counted_reps()
        await self.close(code=protocol.CLOSE_TRY_AGAIN)
        with contextlib.suppress(*REDIS_AWAY):  # back already (a blip): free the slot now
            await self.leave()

    async def receive_control(self, text: str) -> None:
        message = protocol.parse_control(text)
        if isinstance(message, ProtocolError):
            self.guard.strike()
            await self.send_error(message, protocol.ERROR_TEXT[message], None)
            return
        if message["type"] == "end":
            await self.finish()

    async def finish(self) -> None:
        # Narrows the type for mypy: only a connection that got its session can finish.
        assert self.session is not None  # nosec B101 # see the line above
        if self.ended:
            return
        self.ended = True
        if self.serving is not None and self.serving is not asyncio.current_task():
            self.serving.cancel()
        # Ended on the way back from a repetition: it counts if it came back far enough.
        last = self.tracker.finish()
        if isinstance(last, RepetitionMetrics):
            stage = self.tracker.stage
            await self.act_on(Feedback(stage, last.set_number, last.index, repetition=last))
        await self.hand_over_reps()
        await self.store_counted_reps()
        summary = await database_sync_to_async(_complete_and_summarise)(self.session, self.reps)
        await self.send_message({"type": "ended", "summary": summary})
        await self.close(code=1000)

    async def session_ended(self, event: dict[str, Any]) -> None:
        await self.close(code=protocol.CLOSE_ENDED)

    async def pose_result(self, event: PoseReply) -> None:
        if self.session is not None:
            self.pose.resolve(event)

    # --- the user's sign-in and socket cap (sessions.live_users, sessions.socket_cap) -----------
    async def enter(self) -> bool:
        """The sign-in still holds and a socket slot is free: join the user's group and start the
        access check. False when closed instead (4403; 4429 after an error message)."""
        self.user_id = self.scope["user"].pk
        self.session_key = self.scope["session"].session_key
        self.frames_flowed = False
        if await self.access_problem() is not None:
            await self.close(code=protocol.CLOSE_SIGNED_OUT)
            return False
        if not await self.claim_slot():
            await self.send_message(too_many_sockets_error())
            await self.close(code=protocol.CLOSE_TOO_MANY_SOCKETS)
            return False
        self.holds_slot = True
        metrics.socket_opened()  # closed with the slot (leave)
        if not await self.claim_stream():
            await self.send_message(service_busy_error())
            await self.close(code=protocol.CLOSE_BUSY)
            await self.leave()
            return False
        if self.channel_layer is not None:
            await self.channel_layer.group_add(user_group(self.user_id), self.channel_name)
        self.watching = asyncio.create_task(self.watch_access())
        return True

    async def access_problem(self, frames_flowed: bool = False) -> str | None:
        return await database_sync_to_async(live_access_problem)(
            session_key=self.session_key, user_id=self.user_id, frames_flowed=frames_flowed
        )

    async def claim_slot(self) -> bool:
        # Network I/O with Redis: a thread of its own, not the database thread.
        return await sync_to_async(socket_claim, thread_sensitive=False)(
            user_id=self.user_id, connection_id=self.channel_name
        )

    async def claim_stream(self) -> bool:
        """A place among the streams the pose workers serve at full rate (or its renewal)."""
        return await sync_to_async(stream_claim, thread_sensitive=False)(
            connection_id=self.channel_name
        )

    async def watch_access(self) -> None:
        """Every LIVE_ACCESS_CHECK_S: the sign-in still holds (some endings send no event), and
        the slots are claimed again (the heartbeat that keeps them from going stale)."""
        while True:
            await asyncio.sleep(settings.LIVE_ACCESS_CHECK_S)
            flowed, self.frames_flowed = self.frames_flowed, False
            try:
                problem = await self.access_problem(frames_flowed=flowed)
                claimed = problem is not None or await self.claim_slot()
                if problem is None:
                    # Renewed, never refused: an admitted stream is not closed for load.
                    await self.claim_stream()
            except Exception:
                # A database or Redis hiccup: keep the socket, ask again next time.
                logger.exception("live access check failed")
                continue
            if problem is not None:
                return await self.shut(protocol.CLOSE_SIGNED_OUT)
            if not claimed:
                return await self.shut(protocol.CLOSE_TOO_MANY_SOCKETS)

    async def user_signed_out(self, event: dict[str, Any]) -> None:
        """``user.signed_out`` (sessions.live_users): this browser session's, or every one's."""
        if event.get("session_key") in (None, self.session_key):
            await self.shut(protocol.CLOSE_SIGNED_OUT)

    async def shut(self, code: int) -> None:
        """Close for the user's sake: the flag first, so that nothing more is processed; the
        frame waiting in the slot and the one at a pose worker are dropped."""
        if self.closing:
            return
        self.closing = True
        self.slot = None
        serving = getattr(self, "serving", None)
        if serving is not None and serving is not asyncio.current_task():
            serving.cancel()
        if code == protocol.CLOSE_TOO_MANY_SOCKETS:
            await self.send_message(too_many_sockets_error())
        await self.close(code=code)
        await self.leave()

    async def leave(self) -> None:
        """Stop the access check, leave the user's group and free the slot."""
        if self.watching is not None and self.watching is not asyncio.current_task():
            self.watching.cancel()
        if not self.holds_slot:
            return
        self.holds_slot = False
        metrics.socket_closed()
        if self.channel_layer is not None:
            await self.channel_layer.group_discard(user_group(self.user_id), self.channel_name)
        await sync_to_async(_release_slots, thread_sensitive=False)(self.user_id, self.channel_name)

    # --- sending ---------------------------------------------------------------------------------
    async def send_message(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(message))

    async def send_error(self, code: str, message: str, sequence: int | None) -> None:
        await self.send_message(protocol.error_message(str(code), message, sequence))
        if self.guard.abusive:
            await self.close(code=protocol.CLOSE_ABUSE)


_FRAME_ERRORS = frozenset(error.value for error in FrameError)


def _release_slots(user_id: int, connection_id: str) -> None:
    socket_release(user_id=user_id, connection_id=connection_id)
    stream_release(connection_id=connection_id)


def _queue_rep(session: ExerciseSession, rep: RepetitionMetrics) -> None:
    record_rep.delay_on_commit(str(session.pk), asdict(rep))


def _complete_and_summarise(
    session: ExerciseSession, counted_here: list[RepetitionMetrics]
) -> dict[str, Any]:
    """Complete the session with every repetition known so far (recorded, or counted on this
    connection and still on its way) and describe it for the page's summary."""
    recorded = repetition_metrics_of_session(session=session)
    reps = {(rep.set_number, rep.index): rep for rep in [*recorded, *counted_here]}
    session = session_complete(session=session, known_reps=counted_here)
    return protocol.summary(session, sorted(reps.values(), key=lambda r: (r.set_number, r.index)))
