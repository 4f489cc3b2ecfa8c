"""A real ``mlflow server`` process for tests: SQLite backend, artifacts served from a local folder.

:func:`mlflow_server` is a plain context manager so any fixture (module- or function-scoped)
can wrap it::

    @pytest.fixture(scope="module")
    def tracking_server(tmp_path_factory):
        with mlflow_server(tmp_path_factory.mktemp("mlflow")) as server:
            yield server

The server listens on 127.0.0.1 on a free port, is started in its own process group (so the
uvicorn worker it spawns is stopped with it) and is waited for until ``/health`` answers.
Starting one costs seconds (10-20 s on a small CI runner): share one per module.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from launch.local.services import free_port

START_TIMEOUT_S = 90.0
"""How long to wait for ``/health`` before giving up (a cold start on 2 cores takes ~20 s)."""

SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
"""The server's background job executor (GenAI jobs) starts seven huey worker processes the
tracking tests never use; without them the server starts in about half the time on 2 cores."""


@dataclass
class MlflowServer:
    """A running server: its URI, where it keeps its data, and its process."""

    uri: str
    port: int
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def backend_uri(self) -> str:
        """The SQLite store, for ``mlflow ui --backend-store-uri`` or direct inspection."""
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def stop(self) -> None:
        """Stop the server and its workers (idempotent); tests call it to simulate a lost server."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)


def _mlflow_command(root: Path, port: int) -> list[str]:
    mlflow = Path(sys.executable).with_name("mlflow")
    return [
        str(mlflow), "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait_until_healthy(server: MlflowServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"mlflow server exited early:\n{server.log_path.read_text()[-3000:]}")
        if _healthy(server.uri):
            return
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"mlflow server not healthy after {START_TIMEOUT_S}s:\n{server.log_path.read_text()[-3000:]}")


@contextlib.contextmanager
def mlflow_server(root: Path) -> Iterator[MlflowServer]:
    """Run ``mlflow server`` with its database and artifacts under ``root``; stop it on exit."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with open(root / "server.log", "wb") as log:
        process = subprocess.Popen(
            _mlflow_command(root, port), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=root, env={**os.environ, **SERVER_ENV},
        )
    server = MlflowServer(uri=f"http://127.0.0.1:{port}", port=port, root=root, process=process)
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        server.stop()
