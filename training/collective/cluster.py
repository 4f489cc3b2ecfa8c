"""The hosts of a job, their ranks, and XGBoost's collective across them.

Rank is the index of the current host in the *sorted* host list, so every host computes the same
ranks without talking. The first host runs the tracker; every host (the first too) joins the
collective, retrying while its peers boot. With one host there is no collective at all.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import re
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from training import errors
from training.collective.ledger import Ledger, ledger_path
from training.contract import LEDGER_ENV
from training.errors import ClusterError, ConfigError, UserError

log = logging.getLogger(__name__)

BIND_WAIT_SECONDS = 75.0
"""How long the leader retries a tracker port in use: TIME_WAIT lasts 60 s on Linux."""
BIND_RETRY_SECONDS = 2.0


@dataclass(frozen=True)
class Cluster:
    """The job's hosts (sorted) and this host's place among them."""

    hosts: tuple[str, ...]
    current_host: str

    @classmethod
    def from_hosts(cls, hosts: list[str], current_host: str) -> Cluster:
        ordered = tuple(sorted(hosts))
        if not ordered:
            raise ConfigError("resourceconfig.json lists no hosts: SageMaker writes it; check the base directory")
        if current_host not in ordered:
            raise ConfigError(
                f"current host {current_host!r} is not among the hosts {list(ordered)} in resourceconfig.json: "
                "fix resourceconfig.json"
            )
        return cls(ordered, current_host)

    @property
    def size(self) -> int:
        return len(self.hosts)

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def leader(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def resolve(host: str, timeout: float) -> str:
    """The host's IPv4 address, waiting for DNS (peers' names appear as they boot)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.gethostbyname(host)
        except OSError as err:  # socket.gaierror / herror: not (yet) in DNS
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"cannot resolve host {host!r} within {timeout:.0f} s: check the job's network configuration"
                ) from err
            time.sleep(1.0)


_session = threading.local()
"""This thread's :class:`Ledger` while it is in a collective (XGBoost's communicator is per thread too)."""


@contextlib.contextmanager
def collective(cluster: Cluster, port: int, timeout: int, ledger_dir: Path | None = None) -> Iterator[None]:
    """Join XGBoost's collective for the duration of the block (a no-op for one host).

    Every collective call inside the block is recorded in this host's ledger (:mod:`training.collective.ledger`),
    written to ``ledger_dir`` when one is given; the host logs the ledger's count and digest as it
    leaves, so the hosts' logs show whether they made the same calls.
    """
    if not cluster.distributed:
        yield
        return
    from xgboost import collective as coll
    from xgboost.core import XGBoostError

    ledger = _open_ledger(ledger_dir, cluster)  # before joining: a host that cannot fails alone, at once
    address = resolve(cluster.hosts[0], timeout)
    tracker = _start_tracker(address, cluster.size, port, timeout) if cluster.leader else None
    args = {"dmlc_communicator": "rabit", "dmlc_tracker_uri": address, "dmlc_tracker_port": port,
            "dmlc_task_id": str(cluster.rank), "dmlc_timeout": timeout, "dmlc_retry": 3}
    _join(coll, args, cluster, timeout)
    _xgboost_calls()
    _session.ledger = ledger
    try:
        yield
    except XGBoostError:
        # the collective broke (a peer died, or the hosts' calls fell out of step): where this host was
        log.warning("this host's last collective calls: %s", ledger.last_calls())
        raise
    finally:
        _session.ledger = None
        ledger.close()
        log.info("collective calls made: %d (ledger digest %s)", ledger.calls, ledger.digest)
        _leave(coll, tracker)


def _open_ledger(directory: Path | None, cluster: Cluster) -> Ledger:
    try:
        return Ledger(ledger_path(directory, cluster.current_host) if directory is not None else None)
    except OSError as err:
        raise ConfigError(f"cannot write the collective ledger in {directory} ({err.strerror or err}): set "
                          f"{LEDGER_ENV} to a folder the job can write, or leave it unset") from None


def _start_tracker(address: str, workers: int, port: int, timeout: int) -> Any:
    """Start the tracker on the leader.

    XGBoost 3.0 binds the port when the tracker is created (``XGTrackerCreate``) and reports any
    failure as an ``XGBoostError``: a port in use reads "Failed to bind socket. system
    error:Address already in use", an address not on this host "...:Cannot assign requested
    address". An address Python cannot look up fails earlier, in ``socket.getaddrinfo`` (OSError).
    Anything else is a bug and keeps its traceback.

    A port in use is retried for up to :data:`BIND_WAIT_SECONDS` (or ``timeout``, if shorter): with
    SageMaker's warm pools a job can start seconds after the last one left the port in TIME_WAIT,
    which lasts 60 s.
    """
    from xgboost.core import XGBoostError
    from xgboost.tracker import RabitTracker

    deadline = time.monotonic() + min(BIND_WAIT_SECONDS, timeout)
    while True:
        try:
            tracker = RabitTracker(n_workers=workers, host_ip=address, port=port, sortby="task", timeout=timeout)
            tracker.start()
            break
        except (XGBoostError, OSError) as err:
            if not _port_in_use(err) or time.monotonic() >= deadline:
                raise ClusterError(_tracker_message(address, port, err)) from err
            log.info("tracker port %d is in use (a previous job's connections may still be closing): trying again",
                     port)
            time.sleep(BIND_RETRY_SECONDS)
    log.info("tracker listening on %s:%d for %d hosts", address, port, workers)
    return tracker


def _port_in_use(err: BaseException) -> bool:
    return "address already in use" in str(err).lower()


def _tracker_message(address: str, port: int, err: BaseException) -> str:
    cause = error_summary(err)
    if _port_in_use(err):
        return (f"cannot start the XGBoost tracker on {address}:{port} ({cause}, still after retrying for "
                f"{BIND_WAIT_SECONDS:.0f} s or the collective timeout): another process holds the port; "
                "set the 'tracker_port' hyperparameter to a free port")
    return (f"cannot start the XGBoost tracker on {address}:{port} ({cause}): the first host's name must "
            "resolve to an address of that host; check the job's network configuration")


def _join(coll: Any, args: dict[str, Any], cluster: Cluster, timeout: int) -> None:
    """Join the collective, retrying while the tracker boots.

    ``collective.init`` reports every failure to reach the tracker (connection refused while it
    boots, a timeout) as an ``XGBoostError``: those are retried until ``timeout``. Anything else
    (a TypeError from bad arguments) is a bug and is raised at once. While it waits the host logs
    one line, ``waiting for the tracker at HOST:PORT``, in place of XGBoost's own retries
    (:func:`_quiet_bootstrap`).
    """
    from xgboost.core import XGBoostError

    deadline = time.monotonic() + timeout
    attempt = 0
    tracker = f"{args['dmlc_tracker_uri']}:{args['dmlc_tracker_port']}"
    waiting: list[bool] = []

    def wait_once() -> None:
        if not waiting:
            waiting.append(True)
            log.info("waiting for the tracker at %s", tracker)

    while True:
        attempt += 1
        try:
            with _quiet_bootstrap(wait_once):
                coll.init(**args)
            break
        except XGBoostError as err:  # the tracker may not be up yet
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"host {cluster.current_host} could not join the other {cluster.size - 1} hosts at "
                    f"{args['dmlc_tracker_uri']}:{args['dmlc_tracker_port']} within {timeout} s ({error_summary(err)}): "
                    "check that all hosts started and can reach each other (security group allows traffic "
                    "between them), and the other hosts' logs for one that failed before joining; raise "
                    "'collective_timeout' if reading the table (the leader's query in read_mode=scan, or a host's "
                    "shard in read_mode=hash) takes longer"
                ) from err
            wait_once()
            log.debug("joining attempt %d failed: %s", attempt, error_summary(err))
            time.sleep(min(2.0 * attempt, 10.0))
    log.info("joined the collective as rank %d of %d", coll.get_rank(), coll.get_world_size())


_CONNECT_RETRY = re.compile(r"Failed to connect to:|Retrying connection to ")
"""XGBoost's warnings for each failed connection to the tracker while it boots (``socket.cc``)."""
_RANK_LINE = re.compile(r"^\[[0-9:]+\] Task \d+ got rank \d+$")
"""The line XGBoost prints as a host joins (the host's own ``joined the collective`` line says it)."""


@contextlib.contextmanager
def _quiet_bootstrap(on_retry: Callable[[], None]) -> Iterator[None]:
    """XGBoost's joining chatter, quietened for the block: a retried connection to the tracker calls
    ``on_retry`` instead of warning, and the ``[hh:mm:ss] Task 0 got rank 0`` line is dropped.

    XGBoost's native library hands its log lines to a Python callback (``xgboost.core._log_callback``):
    warnings through ``warnings.warn``, anything else through ``print``. So only those two paths are
    filtered, and only for these lines: every other warning and line passes through, and a failed
    join still raises its ``XGBoostError``. (The callback is registered for the thread that imported
    XGBoost, the main one, where the container joins; from another thread XGBoost writes to stderr.)
    Only the main thread filters: ``warnings`` and ``sys.stdout`` are the process's, and hosts run as
    threads of one process (tests, :func:`launch.local.hosts.run_thread_hosts`) would undo each other's.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with warnings.catch_warnings():
        show = warnings.showwarning

        def showwarning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                        line: str | None = None) -> None:
            if _CONNECT_RETRY.search(str(message)):
                on_retry()
            else:
                show(message, category, filename, lineno, file, line)

        warnings.showwarning = showwarning
        out = _DroppingLines(sys.stdout, _RANK_LINE)
        try:
            with contextlib.redirect_stdout(out):  # type: ignore[type-var]
                yield
        finally:
            out.close()


class _DroppingLines:
    """A text stream that writes ``stream`` every line but those that match ``drop``."""

    def __init__(self, stream: Any, drop: re.Pattern[str]) -> None:
        self._stream, self._drop, self._pending = stream, drop, ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            *lines, self._pending = (self._pending + text).split("\n")
            kept = "".join(f"{line}\n" for line in lines if not self._drop.match(line))
        if kept:
            self._stream.write(kept)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        """Write what is left of an unfinished line (the stream itself stays open)."""
        with self._lock:
            rest, self._pending = self._pending, ""
        if rest:
            self._stream.write(rest)

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno: the stream's own
        return getattr(self._stream, name)


def _leave(coll: Any, tracker: Any) -> None:
    """Leave the collective and stop the tracker; XGBoost's own failures here are logged, not raised.

    This runs in a ``finally``: raising would hide the error that broke the group. ``finalize``,
    ``wait_for`` (on timeout) and ``free`` (after a tracker that timed out) raise ``XGBoostError``.
    """
    from xgboost.core import XGBoostError

    try:
        coll.finalize()
    except XGBoostError as err:
        log.warning("leaving the collective failed: %s", error_summary(err))
    if tracker is None:
        return
    for step in (lambda: tracker.wait_for(timeout=30), tracker.free):
        try:
            step()
        except XGBoostError as err:
            log.debug("tracker did not shut down cleanly: %s", error_summary(err))


_XGB_LOCATION = re.compile(r"^\[[0-9:]+\] \S+:\d+: ?")
_XGB_CAUSE = re.compile(r"^- \[[^\]]*\]: (.+)$")


def error_summary(err: BaseException, limit: int = 200) -> str:
    """One line that says what went wrong, for messages.

    XGBoost's collective errors start with a bare source location (``[01:36:23]
    /workspace/src/collective/result.cc:78:``), then list the causes as ``- [file|time]: text``
    lines, then a native stack trace: keep the causes, drop the rest.
    """
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    causes = [m.group(1).strip().rstrip(".") for line in lines if (m := _XGB_CAUSE.match(line))]
    if causes:
        return "; ".join(causes[:3])[:limit]
    for line in lines:
        text = _XGB_LOCATION.sub("", line).strip()
        if text:
            return text[:limit]
    return type(err).__name__


def allreduce_sum(values: np.ndarray, cluster: Cluster, site: str) -> np.ndarray:
    """Sum an array across hosts (identity for one host); ``site`` names the call in the ledger."""
    return _allreduce(values, cluster, site, "sum")


def allreduce_max(values: np.ndarray, cluster: Cluster, site: str) -> np.ndarray:
    """Maximum of an array across hosts (identity for one host); ``site`` names the call in the ledger."""
    return _allreduce(values, cluster, site, "max")


def broadcast(value: Any, cluster: Cluster, site: str, root: int = 0) -> Any:
    """Host ``root``'s ``value`` on every host (identity for one host); ``site`` names the call in the ledger."""
    if not cluster.distributed:
        return value
    _record(site, f"broadcast:root{root}", "object", "-")
    try:
        return _xgboost_calls()[1](value, root)
    except (pickle.UnpicklingError, EOFError) as err:  # the root pickled it whole: the bytes did not all arrive
        raise ClusterError(f"host {cluster.current_host} lost contact with the other hosts (a broadcast from host "
                           f"{cluster.hosts[root]} arrived incomplete: {type(err).__name__}): another host failed or "
                           "was stopped; see its log for the cause") from None


def gather(value: Any, cluster: Cluster, site: str) -> list[Any]:
    """Every host's ``value`` concatenated in rank order, on every host (one broadcast per host)."""
    if not cluster.distributed:
        return list(value)
    out: list[Any] = []
    for rank in range(cluster.size):
        out.extend(broadcast(list(value) if rank == cluster.rank else None, cluster, site, root=rank))
    return out


T = TypeVar("T")


def agree(step: Callable[[], T], cluster: Cluster, site: str) -> T:
    """This host's ``step``, then every host's outcome in one gather: when any host failed, every
    host fails at once with that failure, instead of the others waiting in their next collective
    call until the collective timeout and then saying they lost contact.

    The host that failed raises its own error (a bug keeps its traceback); the others raise the
    first failed host's error, of the same kind, naming that host. ``step`` must make no collective
    call itself (a host that failed inside one would leave the others in it).
    """
    if not cluster.distributed:
        return step()
    result, failure, error = None, None, None
    try:
        result = step()
    except Exception as err:  # raised below, once every host knows
        failure, error = _outcome(err), err
    outcomes = gather([failure], cluster, site)
    if error is not None:
        raise error
    _raise_first(outcomes, cluster)
    return result  # type: ignore[return-value]


def from_leader(step: Callable[[], T], cluster: Cluster, site: str) -> T:
    """The leader's ``step``, its result on every host; when it fails, every host fails with its error."""
    if not cluster.distributed:
        return step()
    payload, error = None, None
    if cluster.leader:
        try:
            payload = (step(), None)
        except Exception as err:  # raised below, once every host knows
            payload, error = (None, _outcome(err)), err
    result, failure = broadcast(payload, cluster, site)
    if error is not None:
        raise error
    _raise_first([failure], cluster)
    return result


def _outcome(err: Exception) -> tuple[str, str]:
    """What the other hosts learn of a host's failure: the kind of user error and its line, or a bug's type."""
    return (type(err).__name__, str(err)) if isinstance(err, UserError) else ("", type(err).__name__)


def _raise_first(outcomes: list[tuple[str, str] | None], cluster: Cluster) -> None:
    for host, outcome in zip(cluster.hosts, outcomes, strict=False):
        if outcome is None:
            continue
        kind, text = outcome
        if not kind:
            raise ClusterError(f"host {host} failed with an internal error ({text}): see its log for the traceback")
        error_class = getattr(errors, kind, None)
        if not (isinstance(error_class, type) and issubclass(error_class, UserError)):
            error_class = UserError
        raise error_class(f"{text} (on host {host})")


def _allreduce(values: np.ndarray, cluster: Cluster, site: str, op: str) -> np.ndarray:
    if not cluster.distributed:
        return values
    from xgboost import collective as coll

    data = np.ascontiguousarray(values)
    _record(site, f"allreduce:{op}", str(data.dtype), str(data.shape))
    return _xgboost_calls()[0](data, coll.Op.SUM if op == "sum" else coll.Op.MAX)


def note_native(cluster: Cluster, site: str, op: str) -> None:
    """Record, just before the code that makes it, a collective call XGBoost's native library makes by
    itself (building any XGBoost matrix inside the collective all-reduces its column count), so the
    ledgers show it like the others (without its dtype and shape, which Python never sees)."""
    if cluster.distributed:
        _record(site, f"native:{op}", "-", "-")


def _record(site: str, op: str, dtype: str, shape: str) -> None:
    ledger = getattr(_session, "ledger", None)
    if ledger is not None:
        ledger.record(site, op, dtype, shape)


_originals: list[Any] = []
_originals_lock = threading.Lock()


def _xgboost_calls() -> tuple[Any, Any]:
    """XGBoost's own ``collective.allreduce`` and ``collective.broadcast``; from the first call on,
    XGBoost's Python-side collective calls go through the ledger too.

    ``xgb.train`` all-reduces every metric of every evaluation set each round
    (``xgboost.callback._allreduce_metric``) before it calls any callback: those calls are part
    of each round's sequence. XGBoost looks the functions up on its ``collective`` module at each
    call, so wrapping them there records them under the caller's name (``xgboost:_allreduce_metric``).
    Installed once per process, for the rest of it: whatever the module holds at the first call is
    kept as XGBoost's own. A thread outside a collective passes straight through.
    """
    with _originals_lock:
        if not _originals:
            from xgboost import collective as coll

            allreduce, broadcast_ = coll.allreduce, coll.broadcast

            def recorded_allreduce(data: np.ndarray, op: Any) -> np.ndarray:
                array = np.asarray(data)
                _record(f"xgboost:{sys._getframe(1).f_code.co_name}", f"allreduce:{coll.Op(op).name.lower()}",
                        str(array.dtype), str(array.shape))
                return allreduce(data, op)

            def recorded_broadcast(data: Any, root: int) -> Any:
                _record(f"xgboost:{sys._getframe(1).f_code.co_name}", f"broadcast:root{root}", "object", "-")
                return broadcast_(data, root)

            coll.allreduce, coll.broadcast = recorded_allreduce, recorded_broadcast
            _originals.extend([allreduce, broadcast_])
        return _originals[0], _originals[1]


@contextlib.contextmanager
def collective_errors(cluster: Cluster) -> Iterator[None]:
    """Turns a broken collective (a peer died or timed out) into a ClusterError with the fix.

    Only XGBoost errors from its communicator: any other XGBoost error (a check that failed on
    every host alike) keeps its own text and traceback, rather than blaming another host.
    """
    try:
        yield
    except Exception as err:
        if isinstance(err, _xgboost_error()) and cluster.distributed and _COMMUNICATION.search(str(err)):
            first = error_summary(err)
            raise ClusterError(
                f"host {cluster.current_host} lost contact with the other hosts ({first}): another host "
                "failed or was stopped; see its log for the cause"
            ) from None
        raise


_COMMUNICATION = re.compile(r"/collective/|\b(ring|poll|socket|connect\w*|tracker|bootstrap\w*|timed? ?out|allreduce|"
                            r"allgather|broadcast|communicat\w*|peer)\b", re.IGNORECASE)
"""What XGBoost's communicator errors say (its source path, ``Ring allreduce ... failed``, ``Poll
timeout``, ``Failed to connect``)."""


def _xgboost_error() -> type[Exception]:
    import xgboost as xgb

    return xgb.core.XGBoostError
