"""/metrics scraped while a real live session streams the squat video to the local pose processes:
the frame counters, the round trip, the pose workers' own time and queue wait (counted in their
processes) and the open sockets move."""

from typing import Any

import pytest

from tests.conftest import World
from tests.sessions.test_live_consumer import (
    communicator,
    connect_ready,
    frame,
    headers_of,
    receive_until,
    run,
)
from tests.web.test_metrics import scrape, value

pytestmark = pytest.mark.django_db(transaction=True)
FRAMES = 20


@pytest.fixture(autouse=True)
def local_pose_processes(settings: Any, eager_celery: None) -> None:
    settings.POSE_TRANSPORT = "local"
    settings.LIVE_MAX_FRAMES_PER_S = 1000


def test_a_live_session_moves_the_metrics_an_operator_scrapes(
    world: World, squat_frames: list[tuple[float, bytes]]
) -> None:
    before = scrape()
    comm = communicator(headers_of(world.p.user), world.a.open_session)

    async def stream() -> dict[str, float]:
        await connect_ready(comm)
        during = scrape()
        for sequence, (capture_ms, jpeg) in enumerate(squat_frames[:FRAMES], start=1):
            await comm.send_to(bytes_data=frame(sequence, jpeg, capture_ms))
            await receive_until(comm, "pose")  # one at a time: none replaced
        await comm.send_to(bytes_data=b"not a frame")
        await receive_until(comm, "error")
        await comm.disconnect()
        return {"sockets": value(during, "rehab_live_sockets_open")}

    open_during = run(stream)["sockets"]
    after = scrape()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert open_during - value(before, "rehab_live_sockets_open") == 1
    assert value(after, "rehab_live_sockets_open") == value(before, "rehab_live_sockets_open")
    assert moved("rehab_live_frames_received_total") == FRAMES + 1
    assert moved("rehab_live_frames_served_total") == FRAMES
    assert moved("rehab_live_frames_refused_total", reason="bad_header") == 1
    assert moved("rehab_pose_round_trip_seconds_count") == FRAMES
    # Observed in the pose processes, added up by the web process's scrape.
    assert moved("rehab_pose_seconds_count") == FRAMES
    assert moved("rehab_pose_queue_wait_seconds_count") == FRAMES
    assert 0 < moved("rehab_pose_seconds_sum") < moved("rehab_pose_round_trip_seconds_sum")
