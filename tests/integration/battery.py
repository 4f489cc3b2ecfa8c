"""Stand-ins and checks the reliability battery shares (issue 6).

- :class:`FakeSecretsManager` speaks Secrets Manager's JSON protocol to the real boto3 client,
  records every request and answers ``AccessDeniedException`` (moto cannot deny anything).
- :class:`SilentListener` accepts TCP connections, counts them and never answers: a Snowflake
  address that must never be contacted, or one that hangs until the connector's timeouts fire.
- :func:`assert_user_failure` is the contract of a bad-input outcome; :func:`assert_no_secret`
  searches every byte a job left behind for the distinctive secret value.
- :func:`run_in_process` runs one host of a job through the entry program's own function
  (``container.entry.main``) inside the test process: what a host process would get (its ``/opt/ml``
  tree, its environment, a log of everything written to stdout and stderr), without a Python start
  and the imports per case. A job whose exit code must be seen from outside runs as a process instead.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from launch.local.hosts import LocalJobResult, _collect, host_environ, prepare_hosts
from training import contract

ACCESS_DENIED = ("User: arn:aws:sts::123456789012:assumed-role/SageMakerJob/job is not authorized to perform: "
                 "secretsmanager:GetSecretValue on resource: {secret} because no identity-based policy allows "
                 "the secretsmanager:GetSecretValue action")


class FakeSecretsManager:
    """A local HTTP endpoint in Secrets Manager's JSON protocol that denies every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []  # (X-Amz-Target, SecretId)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                secret = str(body.get("SecretId", ""))
                owner.requests.append((self.headers.get("X-Amz-Target", ""), secret))
                payload = json.dumps({"__type": "AccessDeniedException",
                                      "Message": ACCESS_DENIED.format(secret=secret)}).encode()
                self.send_response(400)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def calls(self, secret_id: str) -> int:
        return sum(1 for _, secret in self.requests if secret == secret_id)

    def __enter__(self) -> FakeSecretsManager:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


class SilentListener:
    """Accepts connections on a free port, counts them, and never sends a byte."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._held: list[socket.socket] = []
        self.connections = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    def _accept(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            self._held.append(conn)

    def __enter__(self) -> SilentListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self._sock.close()


def closed_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_parallel(jobs: dict[str, Any], workers: int = 4) -> dict[str, Any]:
    """Run ``{name: callable}`` a few at a time (local jobs mostly wait on imports and timeouts)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def run_in_process(hyperparameters: dict[str, str], workdir: Path, env: dict[str, str], job_name: str
                   ) -> LocalJobResult:
    """A one-host job run by ``container.entry.main`` in this process, set up as
    :func:`launch.local.hosts.start_local_job` sets up a host process: the same host tree under
    ``workdir/jobs/job_name``, the same environment (this process's, less the job's own settings, plus
    ``env``), stdout and stderr (Python's and the file descriptors') into the host's ``log.txt``.

    One case at a time (the environment is the process's): everything the entry program changes in the
    process (environment, logging, thread hook, SIGTERM handler, boto3's default session) is put back
    before it returns. Call it from the main thread (the entry program installs a signal handler)."""
    from container.entry import main

    _, [host_dir], _, shared = prepare_hosts(hyperparameters, 1, workdir / "jobs" / job_name)
    host_env = host_environ(host_dir, job_name, {**shared, **env})
    with _host_process(host_env, host_dir / "log.txt"):
        code = main([contract.TRAIN_COMMAND])
    return _collect(job_name, [host_dir], [code])


@contextmanager
def _host_process(environ: dict[str, str], log: Path) -> Iterator[None]:
    """This process as a fresh host's for the block: ``environ`` as its environment, its output into ``log``."""
    import boto3

    from container.entry import QUIET_LOGGERS

    saved_environ, saved_hook, saved_term = dict(os.environ), threading.excepthook, signal.getsignal(signal.SIGTERM)
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    saved_levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    saved_streams, saved_fds = (sys.stdout, sys.stderr), (os.dup(1), os.dup(2))
    boto3.DEFAULT_SESSION = None  # a fresh process builds its own (credentials, endpoint) from its environment
    os.environ.clear()
    os.environ.update(environ)
    sink = open(log, "a", buffering=1, errors="replace")  # noqa: SIM115  closed below
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        sys.stdout = sys.stderr = sink
        yield
    finally:
        sink.flush()
        sys.stdout, sys.stderr = saved_streams
        for fd, saved in zip((1, 2), saved_fds, strict=True):
            os.dup2(saved, fd)
            os.close(saved)
        sink.close()
        os.environ.clear()
        os.environ.update(saved_environ)
        boto3.DEFAULT_SESSION = None
        root.handlers[:], level = saved_root
        root.setLevel(level)
        for name, logger_level in saved_levels.items():
            logging.getLogger(name).setLevel(logger_level)
        threading.excepthook = saved_hook
        signal.signal(signal.SIGTERM, saved_term)


def assert_user_failure(result: LocalJobResult, fragment: str, what: str = "training") -> str:
    """Exit code 1, one actionable line in output/failure and once in the log, no traceback anywhere
    (``what``: ``training`` or ``scoring``, as the log line says)."""
    failure = contract.failure_file(result.host_dirs[0])
    return check_user_failure(result.exit_codes, failure.read_text(), result.logs[0].read_text(errors="replace"),
                              fragment, what)


def check_user_failure(exit_codes: list[int], failure_text: str, log: str, fragment: str, what: str = "training"
                       ) -> str:
    """:func:`assert_user_failure` on texts captured earlier (a restarted job rewrites its host tree)."""
    assert all(code == 1 for code in exit_codes), exit_codes
    line = failure_text.strip()
    assert failure_text == line + "\n" and "\n" not in line, f"not one line: {failure_text!r}"
    assert 0 < len(line) <= 1024, line
    assert fragment in line, f"{fragment!r} not in {line!r}"
    assert "Traceback" not in failure_text and "internal error" not in line, line
    assert log.count(f"{what} failed: {line}") == 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    return line


def leaks(paths: list[Path], *values: str) -> list[str]:
    """Files under ``paths`` (logs, failure files, model, checkpoints, spill) holding any of ``values``."""
    needles = [v.encode() for v in values if v]
    found = []
    for root in paths:
        for path in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            found += [str(path) for needle in needles if needle in data]
    return found


def assert_no_secret(paths: list[Path], *values: str) -> None:
    """Search every byte a job left behind for the secret values."""
    assert not (found := leaks(paths, *values)), f"a secret value leaked into {found}"
