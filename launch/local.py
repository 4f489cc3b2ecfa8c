"""Local mode: the very same container program for N simulated hosts on this machine.

It starts an embedded Snowflake (fakesnow's server, reached over HTTP by the unmodified
snowflake-connector-python) and a local AWS endpoint (moto server) holding the demo secret,
seeds a demo table on first use, writes one ``/opt/ml``-like tree per host, and runs
``python -m container train`` once per host, as SageMaker runs the image.
Hosts are named ``127.0.0.1``, ``127.0.0.2``, ...: they resolve without touching /etc/hosts.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from launch import datasets
from training import contract, names
from training.errors import ConfigError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORKDIR = REPO_ROOT / "work"
REGION = "us-east-1"
DATABASE, SCHEMA = "DEMO", "PUBLIC"
DEMO_SECRET_ID = "local/snowflake-demo"
DEMO_TABLES = {"california": ("CALIFORNIA_HOUSING", datasets.CALIFORNIA_TARGET),
               "synthetic": ("SYNTHETIC", datasets.SYNTHETIC_TARGET),
               "mixed": ("MIXED", datasets.MIXED_TARGET)}
_FINAL = re.compile(r"final metrics: (.*) rounds:(\d+)")
_STOP_GRACE_SECONDS = 15.0
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
        """Start (or restart, on the same port) the local Snowflake server (:mod:`launch.local_snowflake`).

        With ``persist`` its databases live in files under ``snowflake_dir``, so they survive a restart.
        """
        self.snowflake_port = self.snowflake_port or free_port()
        args = [sys.executable, "-m", "launch.local_snowflake", str(self.snowflake_port)]
        if self.persist:
            self.snowflake_dir.mkdir(parents=True, exist_ok=True)
            args.append(str(self.snowflake_dir))
        self._start("snowflake", args, self.snowflake_port)

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

    def _start(self, name: str, args: list[str], port: int) -> None:
        log_file = open(self.workdir / f"{name}-server.log", "ab")  # noqa: SIM115  closed with the process
        process = subprocess.Popen(args, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
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
            else:
                datasets.write_synthetic(parquet, rows, seed=seed, null_fraction=null_fraction, categories=categories)
            count = datasets.load_parquet(conn, name, parquet)
            parquet.unlink(missing_ok=True)
            log.info("seeded table %s.%s.%s with %s rows", DATABASE, SCHEMA, name, f"{count:,}")
            return count
        finally:
            conn.close()


@dataclass
class LocalJobResult:
    """The outcome of a local job: exit code, per-host trees and logs, model and final metrics."""

    job_name: str
    exit_code: int
    exit_codes: list[int]
    host_dirs: list[Path]
    logs: list[Path]
    model_path: Path | None
    final_metrics: dict[str, float]
    rounds: int | None
    failure: str | None


def host_names(hosts: int) -> list[str]:
    if not 1 <= hosts <= 9:
        raise ConfigError(f"--hosts must be between 1 and 9 in local mode, got {hosts}")
    return [f"127.0.0.{i}" for i in range(1, hosts + 1)]


def write_host_tree(host_dir: Path, hosts: list[str], host: str, hyperparameters: dict[str, str]) -> None:
    """The files SageMaker writes under /opt/ml before it starts the image."""
    config = contract.config_dir(host_dir)
    config.mkdir(parents=True, exist_ok=True)
    (config / contract.RESOURCE_CONFIG).write_text(json.dumps(
        {"current_host": host, "hosts": hosts, "current_instance_type": "local", "network_interface_name": "lo"}))
    (config / contract.HYPERPARAMETERS).write_text(json.dumps({k: str(v) for k, v in hyperparameters.items()}))
    (config / contract.CHECKPOINT_CONFIG).write_text(json.dumps({"LocalPath": str(host_dir / "checkpoints")}))


def container_command() -> list[str]:
    """How the image runs our entry program (its ENTRYPOINT plus SageMaker's ``train``)."""
    return [sys.executable, "-m", "container", "train"]


class LocalJob:
    """A running local job: one process per simulated host."""

    def __init__(self, job_name: str, host_dirs: list[Path], processes: list[tuple[subprocess.Popen, Any]]) -> None:
        self.job_name, self.host_dirs, self.processes = job_name, host_dirs, processes

    def leader_log(self) -> str:
        path = self.host_dirs[0] / "log.txt"
        return path.read_text(errors="replace") if path.exists() else ""

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Send ``signum`` to every host still running (SIGTERM is SageMaker's stop signal)."""
        for process, _ in self.processes:
            if process.poll() is None:
                process.send_signal(signum)

    def wait(self, timeout: float = 900.0) -> LocalJobResult:
        return _collect(self.job_name, self.host_dirs, _wait_all(self.processes, timeout))


def start_local_job(
    hyperparameters: dict[str, str], hosts: int = 2, workdir: Path | None = None,
    env: dict[str, str] | None = None, job_name: str | None = None, echo: bool = False,
    command: list[str] | None = None,
) -> LocalJob:
    """Start one job for ``hosts`` simulated hosts; the services must already run (see ``env``).

    Reusing ``job_name`` reuses the host trees, so a stopped job resumes from its checkpoints.
    """
    job_name = job_name or f"local-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    job_dir = (workdir or DEFAULT_WORKDIR) / "jobs" / job_name
    names = host_names(hosts)
    hps = {"tracker_port": str(free_port()), **{k: str(v) for k, v in hyperparameters.items()}}
    host_dirs = [job_dir / name for name in names]
    # Simulated hosts share this machine's cores: give each its share, or they thrash.
    host_env = {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // hosts)), **(env or {})}
    processes = []
    for name, host_dir in zip(names, host_dirs, strict=True):
        write_host_tree(host_dir, names, name, hps)
        contract.failure_file(host_dir).unlink(missing_ok=True)
        processes.append(_start_host(host_dir, job_name, host_env, command or container_command(),
                                     echo and name == names[0]))
    return LocalJob(job_name, host_dirs, processes)


def run_local_job(
    hyperparameters: dict[str, str], hosts: int = 2, workdir: Path | None = None,
    env: dict[str, str] | None = None, job_name: str | None = None, echo: bool = False,
    command: list[str] | None = None, timeout: float = 900.0,
) -> LocalJobResult:
    """Run one job to the end (see :func:`start_local_job`)."""
    return start_local_job(hyperparameters, hosts, workdir, env, job_name, echo, command).wait(timeout)


def _start_host(host_dir: Path, job_name: str, env: dict[str, str], command: list[str], echo: bool) -> Any:
    inherited = {k: v for k, v in os.environ.items() if k not in contract.JOB_SETTINGS}
    host_env = {**inherited, **env, contract.BASE_DIR_ENV: str(host_dir), contract.JOB_NAME_ENV: job_name,
                "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                "PYTHONUNBUFFERED": "1"}
    log_path = host_dir / "log.txt"
    sink = open(log_path, "wb")  # noqa: SIM115  closed by the pump thread
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=host_env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    pump = threading.Thread(target=_pump, args=(process.stdout, sink, echo), daemon=True)
    pump.start()
    return process, pump


def _pump(source: IO[bytes], sink: IO[bytes], echo: bool) -> None:
    with sink:
        for line in source:
            sink.write(line)
            sink.flush()
            if echo:
                sys.stdout.write(line.decode(errors="replace"))
                sys.stdout.flush()


def _wait_all(processes: list[tuple[subprocess.Popen, threading.Thread]], timeout: float) -> list[int]:
    """Wait for every host; once one fails, stop the others after a grace period, as SageMaker does."""
    deadline, failed_at = time.monotonic() + timeout, None
    while any(p.poll() is None for p, _ in processes):
        now = time.monotonic()
        if failed_at is None and any(p.poll() not in (None, 0) for p, _ in processes):
            failed_at = now
        if now > deadline or (failed_at is not None and now - failed_at > _STOP_GRACE_SECONDS):
            for p, _ in processes:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            _reap(processes)
            break
        time.sleep(0.1)
    for _, pump in processes:
        pump.join(timeout=10)
    return [p.returncode for p, _ in processes]


def _reap(processes: list[tuple[subprocess.Popen, threading.Thread]]) -> None:
    for p, _ in processes:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _collect(job_name: str, host_dirs: list[Path], codes: list[int]) -> LocalJobResult:
    logs = [d / "log.txt" for d in host_dirs]
    metrics, rounds = {}, None
    text = logs[0].read_text(errors="replace") if logs[0].exists() else ""
    matches = list(_FINAL.finditer(text))
    if matches:
        match = matches[-1]
        metrics = {k: float(v) for k, v in (item.rsplit(":", 1) for item in match.group(1).split())}
        rounds = int(match.group(2))
    failure = next((f.read_text().strip() for d in host_dirs if (f := contract.failure_file(d)).exists()), None)
    model = contract.model_dir(host_dirs[0]) / contract.MODEL_FILE
    exit_code = next((c for c in codes if c != 0), 0)
    return LocalJobResult(job_name, exit_code, codes, host_dirs, logs, model if model.exists() else None,
                          metrics, rounds, failure)


def demo_hyperparameters(data: str, table: str) -> dict[str, str]:
    """Hyperparameters of the demo job on a seeded table."""
    target = DEMO_TABLES[data][1]
    hps = {"table": f"{DATABASE}.{SCHEMA}.{table}", "target": target, "shard_key": "ID",
           "num_round": "100", "eta": "0.1", "max_depth": "6", "validation_fraction": "0.2"}
    if data == "mixed":  # case-sensitive names, and no feature that is another label
        hps.update(shard_key='"id"', features=",".join(datasets.MIXED_FEATURES))
    return {key: names.encode(key, value) for key, value in hps.items()}


def main_local(args: Any) -> int:
    """``launch/train.py --local``: start the stand-ins, seed the demo table, run the job, report."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s local: %(message)s")
    for name in ("botocore", "urllib3", "snowflake"):
        logging.getLogger(name).setLevel(logging.WARNING)
    workdir = Path(getattr(args, "workdir", None) or DEFAULT_WORKDIR).resolve()
    data = getattr(args, "demo_data", None) or "california"
    rows = getattr(args, "rows", None) or 100_000
    hosts = getattr(args, "hosts", None) or 2
    started = time.monotonic()
    with LocalStack(workdir) as stack:
        table = DEMO_TABLES[data][0] if data == "california" else f"{DEMO_TABLES[data][0]}_{rows}"
        count = stack.ensure_table(table, data=data, rows=rows)
        log.info("local Snowflake on port %d, table %s.%s.%s (%s rows); local Secrets Manager at %s",
                 stack.snowflake_port, DATABASE, SCHEMA, table, f"{count:,}", stack.aws_endpoint)
        stack.put_secret(DEMO_SECRET_ID, stack.snowflake_secret())
        overrides = _overrides(getattr(args, "set", None) or [])
        hps = {**demo_hyperparameters(data, table), **{k: names.encode(k, v) for k, v in overrides.items()}}
        env = {**stack.aws_env(), contract.SECRET_ID_ENV: DEMO_SECRET_ID, **mlflow_env(workdir)}
        log.info("starting %d hosts (the leader's log follows)", hosts)
        result = run_local_job(hps, hosts=hosts, workdir=workdir, env=env, echo=True)
    _report(result, time.monotonic() - started, env.get(contract.TRACKING_URI_ENV, ""))
    return result.exit_code


def mlflow_env(workdir: Path) -> dict[str, str]:
    """MLflow settings for the local job: the caller's, else a local SQLite store under ``workdir``.

    ``MLFLOW_TRACKING_URI=`` (set but empty) turns tracking off.
    """
    uri = os.environ.get(contract.TRACKING_URI_ENV)
    experiment = os.environ.get(contract.EXPERIMENT_ENV) or "snowflake-xgboost-demo"
    if uri == "":
        return {}
    if uri is None:
        store = workdir / "mlflow"
        store.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{store / 'mlflow.db'}"
        _create_experiment(uri, experiment, store / "artifacts")
    return {contract.TRACKING_URI_ENV: uri, contract.EXPERIMENT_ENV: experiment}


def _create_experiment(uri: str, name: str, artifacts: Path) -> None:
    """Create the demo experiment with its artifacts under the work directory (not ./mlruns)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    if client.get_experiment_by_name(name) is None:
        client.create_experiment(name, artifact_location=artifacts.as_uri())


def _overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _report(result: LocalJobResult, seconds: float, tracking_uri: str) -> None:
    print()
    status = "succeeded" if result.exit_code == 0 else f"FAILED (exit code {result.exit_code})"
    print(f"local job {result.job_name} {status} in {seconds:.1f} s")
    if result.final_metrics:
        print("final metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in result.final_metrics.items())
              + f" after {result.rounds} rounds")
    if result.failure:
        print(f"failure: {result.failure}")
    if result.model_path:
        print(f"model: {result.model_path}")
    print("logs:  " + "  ".join(str(p) for p in result.logs))
    if tracking_uri.startswith("sqlite:"):
        print(f"MLflow: .venv/bin/mlflow ui --backend-store-uri {tracking_uri}   (then open http://127.0.0.1:5000)")
    elif tracking_uri:
        print(f"MLflow: {tracking_uri}")
