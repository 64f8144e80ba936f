"""Real server processes for tests of the production topology: `manage.py pose_worker` and a
Celery worker, on the test database and the test Redis."""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_database_url() -> str:
    """The URL of the database pytest-django created, for processes started by a test."""
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError("other processes can only share the test database on PostgreSQL")
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class Background:
    """A child process whose combined output is collected, so a test can wait for a line."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        output = "".join(self.lines)
        raise AssertionError(f"{text!r} not seen from {self.process.args!r}:\n{output}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class TcpProxy:
    """A TCP forwarder to `target` on a port of its own, for cutting a process off a service
    (the database, Redis) and reconnecting it, as a network fault or a restart would."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.open = True
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()  # the service is "down": refused straight away
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self._pairs.append((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every connection and refuse new ones until `restore`."""
        self.open = False
        for pair in self._pairs:
            for end in pair:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
        self._pairs.clear()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


class RedisServer:
    """A Redis of the test's own on a free port, without persistence, that the test may restart:
    a restart loses every key, as it does in a deployment without persistence."""

    def __init__(self) -> None:
        with socket.create_server(("127.0.0.1", 0)) as probe:
            self.port: int = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.server = self._start()

    def _start(self) -> Background:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        server = Background([*argv, "--appendonly", "no"], dict(os.environ))
        server.wait_for("Ready to accept connections")
        return server

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        self.stop()
        self.server = self._start()


def web_server(env: dict[str, str]) -> tuple[Background, str]:
    """daphne serving rehab.asgi in a process of its own (as in production); returns its URL."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    argv = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "rehab.asgi:application"]
    web = Background(argv, env)
    web.wait_for("Listening on TCP address")
    return web, f"http://127.0.0.1:{port}"


def celery_worker(env: dict[str, str]) -> Background:
    worker = Background(
        [str(BIN / "celery"), "-A", "rehab", "worker", "--pool=solo", "--loglevel=info"], env
    )
    worker.wait_for("ready.")
    return worker


def production_env(redis_url: str = "") -> dict[str, str]:
    """The environment of the production processes on the test database and the test Redis (or
    the Redis at `redis_url`)."""
    return {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": redis_url or settings.REDIS_URL,
        "POSE_TRANSPORT": "channels",
    }


@contextmanager
def production_workers(
    pose_workers: int = 2, *, celery: bool = True, redis_url: str = ""
) -> Iterator[list[Background]]:
    """Pose workers and a Celery worker, ready; stopped afterwards. Needs PostgreSQL + Redis."""
    env = production_env(redis_url)
    python = str(BIN / "python")
    started = [Background([python, "manage.py", "pose_worker"], env) for _ in range(pose_workers)]
    try:
        for worker in started:
            worker.wait_for("pose worker ready")
        if celery:
            started.append(celery_worker(env))
        yield started
    finally:
        for worker in started:
            worker.stop()
