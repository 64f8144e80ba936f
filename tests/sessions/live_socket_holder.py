"""Holds one live socket from a process of its own, for the per-user cap's cross-process test
(tests/sessions/test_socket_cap.py).

    python -m tests.sessions.live_socket_holder SESSION_UUID SESSIONID_COOKIE

Drives the real ASGI application of this process (its own consumer, its own access checks and
heartbeats against the shared Redis and database), prints the type of the first message it gets
(``ready``, or ``error`` when refused) and then holds the socket until it is killed.
"""

import asyncio
import os
import sys


async def hold(session_id: str, cookie: str) -> None:
    from channels.testing import WebsocketCommunicator

    from rehab.asgi import application

    headers = [(b"origin", b"http://testserver"), (b"cookie", f"sessionid={cookie}".encode())]
    comm = WebsocketCommunicator(application, f"/ws/sessions/{session_id}/live/", headers)
    connected, _ = await comm.connect(timeout=20)
    first = await comm.receive_json_from(timeout=20) if connected else {"type": "refused"}
    print(first["type"], flush=True)
    await asyncio.Event().wait()


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: python -m tests.sessions.live_socket_holder SESSION_UUID COOKIE")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rehab.settings")
    import django

    django.setup()
    asyncio.run(hold(sys.argv[1], sys.argv[2]))


if __name__ == "__main__":
    main()
