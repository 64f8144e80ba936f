"""`manage.py pose_worker`'s loop (serve_one) with the real engine: a web process whose reply
channel is full loses that one answer, and the worker goes on serving."""

import asyncio
import time
from typing import Any

import cv2
import numpy as np
from channels.layers import InMemoryChannelLayer

from analysis.pose.worker import FrameServer
from sessions.management.commands.pose_worker import serve_one
from sessions.pose_client import REQUEST_CHANNEL
from tests.sessions.test_live_consumer import run


def request(reply_to: str, request_id: int) -> dict[str, Any]:
    jpeg = cv2.imencode(".jpg", np.full((480, 640, 3), 128, np.uint8))[1].tobytes()
    return {"type": "pose.request", "id": request_id, "reply_to": reply_to, "frame": jpeg,
            "t": 0.0, "tracking": None, "expires": time.time() + 30}  # fmt: skip


def test_a_full_reply_channel_costs_one_answer_not_the_worker() -> None:
    server = FrameServer()

    async def scenario() -> dict[str, Any]:
        layer = InMemoryChannelLayer(capacity=1)
        reply_to = await layer.new_channel()
        await layer.send(reply_to, {"type": "pose.result", "id": 0, "answer": {}})  # now full
        await layer.send(REQUEST_CHANNEL, request(reply_to, 1))
        await serve_one(layer, server, asyncio.Event())  # its answer cannot be sent: dropped
        assert (await layer.receive(reply_to))["id"] == 0
        await layer.send(REQUEST_CHANNEL, request(reply_to, 2))
        await serve_one(layer, server, asyncio.Event())
        return dict(await layer.receive(reply_to))

    reply = run(scenario)
    server.engine.close()
    assert reply["id"] == 2 and reply["answer"]["pose"] is None  # a grey frame: nobody
