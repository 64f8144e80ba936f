"""The readiness check of the live sessions' pose workers (a django-health-check check, listed by
rehab/urls.py for ``/health/ready``).

- POSE_TRANSPORT=channels: at least one ``manage.py pose_worker`` beats (sessions/heartbeat.py),
  anywhere: any worker serves any frame.
- local (the embedded default): the web process starts its pose processes on the first live
  page (models load within POOL_START_TIMEOUT_S while the patient gets into place), so a pool
  not started yet is no reason to turn traffic away; a started one must answer a trivial job. A
  pool that lost a process stays broken until the next frame replaces it.
"""

import dataclasses
import datetime
import os
from concurrent.futures.process import BrokenProcessPool

import redis
from django.conf import settings
from health_check import HealthCheck
from health_check.exceptions import ServiceUnavailable

from sessions import heartbeat
from sessions.pose_client import started_local_pool
from web.outages import REDIS_AWAY


@dataclasses.dataclass
class PoseWorkers(HealthCheck):
    """At least one pose worker is alive."""

    timeout: datetime.timedelta = dataclasses.field(
        default=datetime.timedelta(seconds=3), repr=False
    )

    def run(self) -> None:
        if settings.POSE_TRANSPORT == "channels":
            self._some_worker_beats()
        else:
            self._local_processes_answer()

    def _some_worker_beats(self) -> None:
        seconds = self.timeout.total_seconds()
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=seconds, socket_timeout=seconds
        )
        try:
            alive = heartbeat.count_alive(client)
        except REDIS_AWAY as error:
            raise ServiceUnavailable("Redis unreachable: no heartbeat to read") from error
        finally:
            client.close()
        if not alive:
            raise ServiceUnavailable("no pose worker heartbeat")

    def _local_processes_answer(self) -> None:
        pool = started_local_pool()
        if pool is None:
            return
        try:
            pool.submit(os.getpid).result(timeout=self.timeout.total_seconds())
        except BrokenProcessPool as error:
            raise ServiceUnavailable("a local pose process died") from error
        except TimeoutError as error:
            raise ServiceUnavailable("the local pose processes did not answer") from error
