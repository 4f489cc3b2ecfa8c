"""The local stand-ins: an embedded Snowflake and a local AWS endpoint, as child processes.

The Snowflake is fakesnow's server (:mod:`launch.local.snowflake_server`), reached over HTTP by the
unmodified snowflake-connector-python; AWS is a moto server, where the job's secret lives. Both
listen on free ports, so tests and jobs never share fixed ports.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launch import datasets
from launch.local import write_back
from launch.local.result_chunks import QUERY_LOG_ROUTE, ChunkSizes
from training.errors import ConfigError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WORKDIR = REPO_ROOT / "work"
REGION = "us-east-1"
DATABASE, SCHEMA = "DEMO", "PUBLIC"


def free_port() -> int:
    """A TCP port nobody listens on now (tests and jobs never share fixed ports)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(f"the local {name} exited at start (code {process.returncode}): see its log")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise ConfigError(f"the local {name} did not start within {timeout:.0f} s")


@dataclass
class LocalStack:
    """fakesnow and moto servers as child processes, started and stopped together.

    ``snowflake_dir`` keeps the Snowflake databases between runs (the demo table is seeded once).
    """

    workdir: Path
    persist: bool = True
    chunks: ChunkSizes = field(default_factory=ChunkSizes)
    """How the local Snowflake cuts large results into downloaded chunks, as Snowflake does."""
    read_only_tables: tuple[str, ...] = ()
    """Tables (``DB.SCHEMA.TABLE``) no session may write: a role without the privilege (:mod:`launch.local.write_back`)."""
    snowflake_port: int = 0
    aws_port: int = 0
    _processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __enter__(self) -> LocalStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.start_snowflake()
            self.start_aws()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start_snowflake(self) -> None:
        """Start (or restart, on the same port) the local Snowflake server (:mod:`launch.local.snowflake_server`).

        With ``persist`` its databases live in files under ``snowflake_dir``, so they survive a restart.
        """
        self.snowflake_port = self.snowflake_port or free_port()
        args = [sys.executable, "-m", "launch.local.snowflake_server", str(self.snowflake_port)]
        if self.persist:
            self.snowflake_dir.mkdir(parents=True, exist_ok=True)
            args.append(str(self.snowflake_dir))
        self._start("snowflake", args, self.snowflake_port,
                    env={**self.chunks.to_env(), write_back.READ_ONLY_ENV: ",".join(self.read_only_tables)})

    @property
    def snowflake_dir(self) -> Path:
        """Where a persistent local Snowflake keeps its database files."""
        return self.workdir / "snowflake"

    def start_aws(self) -> None:
        self.aws_port = self.aws_port or free_port()
        self._start("aws", [sys.executable, "-m", "moto.server", "-p", str(self.aws_port)], self.aws_port)

    def stop_snowflake(self) -> None:
        """Stop the local Snowflake server (tests use it to cut connections mid-job)."""
        self._stop("snowflake")

    def _start(self, name: str, args: list[str], port: int, env: dict[str, str] | None = None) -> None:
        log_file = open(self.workdir / f"{name}-server.log", "ab")  # noqa: SIM115  closed with the process
        process = subprocess.Popen(args, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True, env={**os.environ, **(env or {})})
        log_file.close()
        self._processes[name] = process
        _wait_for_port(port, process, f"{name} server")

    def _stop(self, name: str) -> None:
        process = self._processes.pop(name, None)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop(self) -> None:
        for name in list(self._processes):
            self._stop(name)

    @property
    def aws_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.aws_port}"

    def aws_env(self) -> dict[str, str]:
        """Environment that points boto3 at the local endpoint with throwaway credentials."""
        return {"AWS_ENDPOINT_URL": self.aws_endpoint, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}

    def snowflake_secret(self, **overrides: Any) -> dict[str, Any]:
        """A password secret for the local Snowflake (fakesnow accepts any credentials)."""
        secret = {"account": "local", "user": "demo", "password": "local-demo-password", "warehouse": "DEMO_WH",
                  "database": DATABASE, "schema": SCHEMA, "role": "SYSADMIN", "auth": "password",
                  "host": "127.0.0.1", "port": self.snowflake_port, "protocol": "http"}
        secret.update(overrides)
        return secret

    def put_secret(self, secret_id: str, secret: dict[str, Any] | str) -> None:
        """Create or replace a secret in the local Secrets Manager."""
        import boto3

        text = secret if isinstance(secret, str) else json.dumps(secret)
        client = boto3.client("secretsmanager", endpoint_url=self.aws_endpoint, region_name=REGION,
                              aws_access_key_id="local", aws_secret_access_key="local")
        try:
            client.create_secret(Name=secret_id, SecretString=text)
        except client.exceptions.ResourceExistsException:
            client.put_secret_value(SecretId=secret_id, SecretString=text)

    def queries(self, since: int = 0) -> dict[str, Any]:
        """The statements the local Snowflake was sent since the ``since``-th (``next``: where to look next time).

        The log lives in the server process: it starts again at 0 when the server is restarted.
        """
        import urllib.request

        url = f"http://127.0.0.1:{self.snowflake_port}{QUERY_LOG_ROUTE}?since={since}"
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310  our own local server
            return json.loads(response.read())

    def connect(self) -> Any:
        """An admin connection to the local Snowflake, in the demo database and schema."""
        import snowflake.connector

        conn = snowflake.connector.connect(user="admin", password="local", account="local", host="127.0.0.1",
                                           port=self.snowflake_port, protocol="http", login_timeout=30,
                                           network_timeout=60)
        cursor = conn.cursor()
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {DATABASE}.{SCHEMA}")
        cursor.execute(f"USE SCHEMA {DATABASE}.{SCHEMA}")
        cursor.close()
        return conn

    def ensure_table(self, name: str, data: str = "california", rows: int = 20_000, seed: int = 0,
                     null_fraction: float = 0.0, replace: bool = False, categories: tuple[int, ...] = ()) -> int:
        """Seed table ``name`` with demo data unless it exists; return its row count."""
        conn = self.connect()
        try:
            existing = None if replace else datasets.table_rows(conn, name)
            if existing is not None:
                return existing
            parquet = self.workdir / f"{name.lower()}.parquet"
            if data == "california":
                datasets.write_california(parquet)
            elif data == "mixed":
                datasets.write_mixed(parquet, rows, seed=seed)
            elif data in datasets.GENERATED:
                datasets.write_generated(parquet, data, rows, seed=seed)
            else:
                datasets.write_synthetic(parquet, rows, seed=seed, null_fraction=null_fraction, categories=categories)
            count = datasets.load_parquet(conn, name, parquet)
            parquet.unlink(missing_ok=True)
            log.info("seeded table %s.%s.%s with %s rows", DATABASE, SCHEMA, name, f"{count:,}")
            return count
        finally:
            conn.close()
