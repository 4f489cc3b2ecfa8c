"""The SageMaker host emulator: one ``/opt/ml`` tree and one container process per simulated host.

SageMaker writes each host's configuration under ``/opt/ml``, starts the image with ``train``,
stops every host once one fails (after a grace period), and reports the failure file. This does
the same on one machine. Hosts are named ``127.0.0.1``, ``127.0.0.2``, ...: they resolve without
touching /etc/hosts. The stand-ins the job talks to are started by :mod:`launch.local.services`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from launch.console import LOCAL_HOSTS_MAX
from launch.follower import RoundProgress, total_rounds
from launch.local.services import DEFAULT_WORKDIR, REPO_ROOT, free_port
from training import contract
from training.collective.cluster import Cluster, collective
from training.collective.ledger import compare_ledger_files
from training.errors import ConfigError
from training.objectives.metrics import read_final_line

T = TypeVar("T")
_STOP_GRACE_SECONDS = 15.0
PROGRESS_SECONDS = 5.0
"""An echoed job shows a progress line after the rounds of each such interval (and after the last round)."""


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
    ledger_mismatch: str | None = None
    """Where the hosts' collective calls differed (:mod:`training.collective.ledger`); the job then counts as failed."""


def run_thread_hosts(work: Callable[[Cluster], T], hosts: Sequence[str], ledger_dir: Path | None = None,
                     timeout: int = 60, wait: float = 600.0) -> list[T]:
    """``work(cluster)`` on every host at once, each a thread of this process inside the job's collective
    (XGBoost's communicator is per thread): the code that runs on every host, without starting a process
    per host, for tests and benchmarks. Results by rank; a host that failed, or is still waiting in a
    collective call after ``wait`` seconds, raises."""
    port, results, errors = free_port(), [None] * len(hosts), []

    def host(rank: int) -> None:
        cluster = Cluster.from_hosts(list(hosts), hosts[rank])
        try:
            with collective(cluster, port, timeout=timeout, ledger_dir=ledger_dir):
                results[rank] = work(cluster)
        except Exception as err:  # raised below, with the other hosts' outcomes
            errors.append((hosts[rank], err))

    threads = [threading.Thread(target=host, args=(rank,), daemon=True) for rank in range(len(hosts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(wait)
    if any(thread.is_alive() for thread in threads):
        raise RuntimeError(f"a host is still waiting in a collective call after {wait:.0f} s (failed: {errors})")
    if errors:
        raise RuntimeError(f"hosts failed: {errors}")
    return results  # type: ignore[return-value]


def host_names(hosts: int) -> list[str]:
    if not 1 <= hosts <= LOCAL_HOSTS_MAX:  # launch.console.check_local_flags says so before anything starts
        raise ConfigError(f"--hosts must be between 1 and {LOCAL_HOSTS_MAX} in local mode, got {hosts}")
    return [f"127.0.0.{i}" for i in range(1, hosts + 1)]


def write_host_tree(host_dir: Path, hosts: list[str], host: str, hyperparameters: dict[str, str]) -> None:
    """The files SageMaker writes under /opt/ml before it starts the image."""
    config = contract.config_dir(host_dir)
    config.mkdir(parents=True, exist_ok=True)
    (config / contract.RESOURCE_CONFIG).write_text(json.dumps(
        {"current_host": host, "hosts": hosts, "current_instance_type": "local", "network_interface_name": "lo"}))
    (config / contract.HYPERPARAMETERS).write_text(json.dumps({k: str(v) for k, v in hyperparameters.items()}))
    (config / contract.CHECKPOINT_CONFIG).write_text(json.dumps({"LocalPath": str(contract.default_checkpoint_dir(host_dir))}))


def container_command(command: str = contract.TRAIN_COMMAND) -> list[str]:
    """How the image runs our entry program (its ENTRYPOINT plus SageMaker's ``train``, or ``score``)."""
    return [sys.executable, "-m", "container", command]


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

    @property
    def ledger_dir(self) -> Path:
        """Where the hosts write their collective ledgers (every local job keeps them)."""
        return ledger_dir(self.host_dirs)


def ledger_dir(host_dirs: list[Path]) -> Path:
    """The job's folder of collective ledgers, beside its host trees."""
    return host_dirs[0].parent / "ledgers"


def start_local_job(
    hyperparameters: dict[str, str], hosts: int = 2, workdir: Path | None = None,
    env: dict[str, str] | None = None, job_name: str | None = None, echo: bool = False,
    command: list[str] | None = None,
) -> LocalJob:
    """Start one job for ``hosts`` simulated hosts; the services must already run (see ``env``).

    Reusing ``job_name`` reuses the host trees, so a stopped job resumes from its checkpoints.
    """
    job_name = job_name or f"local-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    hostnames, host_dirs, hps, shared = prepare_hosts(hyperparameters, hosts, (workdir or DEFAULT_WORKDIR) / "jobs" /
                                                      job_name)
    processes = []
    for name, host_dir in zip(hostnames, host_dirs, strict=True):
        progress = RoundProgress(total_rounds({"HyperParameters": hps})) if echo and name == hostnames[0] else None
        processes.append(_start_host(host_dir, job_name, {**shared, **(env or {})}, command or container_command(),
                                     progress))
    return LocalJob(job_name, host_dirs, processes)


def prepare_hosts(hyperparameters: dict[str, str], hosts: int, job_dir: Path
                  ) -> tuple[list[str], list[Path], dict[str, str], dict[str, str]]:
    """Each host's tree under ``job_dir`` (hyperparameters with a free tracker port, no failure file left
    from a previous run) and the environment the hosts share: host names, host dirs, hyperparameters, env."""
    hostnames = host_names(hosts)
    hps = {"tracker_port": str(free_port()), **{k: str(v) for k, v in hyperparameters.items()}}
    host_dirs = [job_dir / name for name in hostnames]
    ledgers = ledger_dir(host_dirs)
    shutil.rmtree(ledgers, ignore_errors=True)  # a rerun of the same job (resuming) writes them anew
    for name, host_dir in zip(hostnames, host_dirs, strict=True):
        write_host_tree(host_dir, hostnames, name, hps)
        contract.failure_file(host_dir).unlink(missing_ok=True)
    # Simulated hosts share this machine's cores: give each its share, or they thrash. Every host
    # records its collective calls: the job's outcome includes whether they were the same.
    shared = {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // hosts)), contract.LEDGER_ENV: str(ledgers)}
    return hostnames, host_dirs, hps, shared


def host_environ(host_dir: Path, job_name: str, env: dict[str, str]) -> dict[str, str]:
    """A host's environment: this process's, less the job's own settings, plus ``env`` and the host's place."""
    inherited = {k: v for k, v in os.environ.items() if k not in contract.JOB_SETTINGS}
    return {**inherited, **env, contract.BASE_DIR_ENV: str(host_dir), contract.JOB_NAME_ENV: job_name}


def run_local_job(
    hyperparameters: dict[str, str], hosts: int = 2, workdir: Path | None = None,
    env: dict[str, str] | None = None, job_name: str | None = None, echo: bool = False,
    command: list[str] | None = None, timeout: float = 900.0,
) -> LocalJobResult:
    """Run one job to the end (see :func:`start_local_job`)."""
    return start_local_job(hyperparameters, hosts, workdir, env, job_name, echo, command).wait(timeout)


def _start_host(host_dir: Path, job_name: str, env: dict[str, str], command: list[str],
                progress: RoundProgress | None) -> Any:
    """Start one host; with ``progress`` (the leader of an echoed job) its log goes to stdout too."""
    host_env = {**host_environ(host_dir, job_name, env),
                "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                "PYTHONUNBUFFERED": "1"}
    log_path = host_dir / "log.txt"
    sink = open(log_path, "wb")  # noqa: SIM115  closed by the pump thread
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=host_env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    pump = threading.Thread(target=_pump, args=(process.stdout, sink, progress), daemon=True)
    pump.start()
    return process, pump


def _pump(source: IO[bytes], sink: IO[bytes], progress: RoundProgress | None) -> None:
    """Copy a host's output to its log; with ``progress``, to stdout too, with the cloud ``--wait``
    follower's progress line (:class:`launch.follower.RoundProgress`) after each batch of rounds."""
    shown_at = 0.0
    with sink:
        for line in source:
            sink.write(line)
            sink.flush()
            if progress is None:
                continue
            text = line.decode(errors="replace")
            sys.stdout.write(text)
            now = time.monotonic()
            if progress.observe(text, int(time.time() * 1000)) and (
                    now - shown_at >= PROGRESS_SECONDS or progress.done >= progress.total):
                sys.stdout.write(f"progress: {progress.line()}\n")
                shown_at = now
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
    final = read_final_line(text)
    if final is not None:
        metrics, rounds = final
    failure = next((f.read_text().strip() for d in host_dirs if (f := contract.failure_file(d)).exists()), None)
    model = contract.model_dir(host_dirs[0]) / contract.MODEL_FILE
    exit_code = next((c for c in codes if c != 0), 0)
    # A successful job's hosts made every call alike; a failed one's, every call they all made.
    mismatch = compare_ledger_files(ledger_dir(host_dirs), [d.name for d in host_dirs], complete=exit_code == 0)
    if mismatch is not None:  # our bug, whatever else happened: say it first
        failure = f"{mismatch} (a bug: please report it)" + (f"; the job also failed: {failure}" if failure else "")
        exit_code = exit_code or 1
    return LocalJobResult(job_name, exit_code, codes, host_dirs, logs, model if model.exists() else None,
                          metrics, rounds, failure, mismatch)
