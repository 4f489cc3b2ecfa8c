"""The collective's set-up: XGBoost's own failures become one actionable line; a bug stays a bug."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any

import pytest
from xgboost.core import XGBoostError

from training.collective import cluster as cluster_module
from training.collective.cluster import Cluster, collective
from training.errors import ClusterError

JOIN_ARGS = {"dmlc_tracker_uri": "10.0.0.1", "dmlc_tracker_port": 9099}


class FakeCollective:
    """Stands in for ``xgboost.collective``: ``init`` raises the given errors in turn, then succeeds."""

    def __init__(self, *errors: BaseException, finalize_error: BaseException | None = None) -> None:
        self.errors = list(errors)
        self.finalize_error = finalize_error
        self.inits = 0

    def init(self, **args: Any) -> None:
        self.inits += 1
        if self.errors:
            raise self.errors.pop(0)

    def finalize(self) -> None:
        if self.finalize_error is not None:
            raise self.finalize_error

    def get_rank(self) -> int:
        return 0

    def get_world_size(self) -> int:
        return 2


def _leader() -> Cluster:
    return Cluster.from_hosts(["localhost", "peer-not-needed"], "localhost")


def test_a_port_in_use_names_the_port_and_the_fix():
    with socket.socket() as held:  # XGBoost binds when the tracker is created: this port is taken
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        with pytest.raises(ClusterError) as info, collective(_leader(), port, timeout=5):
            pass
    message = str(info.value)
    assert f"cannot start the XGBoost tracker on 127.0.0.1:{port}" in message
    assert "Address already in use" in message and "set the 'tracker_port' hyperparameter to a free port" in message
    assert "still after retrying" in message
    assert "Stack trace" not in message and "[bt]" not in message  # the cause, not XGBoost's native trace
    assert isinstance(info.value.__cause__, XGBoostError)


def test_a_port_freed_within_the_wait_is_retried_until_the_tracker_starts(caplog):
    """A warm-pool restart finds the previous job's port still taken for a few seconds: wait, then start."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    port = held.getsockname()[1]
    threading.Timer(1.0, held.close).start()
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="training.collective.cluster"):
        tracker = cluster_module._start_tracker("127.0.0.1", 1, port, timeout=4)  # retries for up to 4 s
    try:
        assert time.monotonic() - started < 4
        assert f"tracker port {port} is in use" in caplog.text and f"tracker listening on 127.0.0.1:{port}" in caplog.text
    finally:
        with contextlib.suppress(XGBoostError):  # no worker ever joined this tracker
            tracker.free()


def test_an_address_not_on_this_host_is_not_reported_as_a_port_in_use():
    # 192.0.2.1 (TEST-NET-1) is on no interface: XGBoost cannot bind it
    with pytest.raises(ClusterError) as info:
        cluster_module._start_tracker("192.0.2.1", 2, 0, 5)
    message = str(info.value)
    assert "Cannot assign requested address" in message and "port may be in use" not in message
    assert "check the job's network configuration" in message


def test_join_retries_while_the_tracker_boots(monkeypatch):
    monkeypatch.setattr(cluster_module.time, "sleep", lambda seconds: None)
    coll = FakeCollective(XGBoostError("- [socket.h:348|00:00:00]: Socket error. Connection refused"),
                          XGBoostError("- [socket.h:348|00:00:00]: Socket error. Connection refused"))
    cluster_module._join(coll, JOIN_ARGS, _leader(), timeout=60)
    assert coll.inits == 3


def test_join_gives_up_after_the_timeout_naming_the_cause():
    refused = XGBoostError("[01:36:23] /workspace/src/collective/result.cc:78: \n"
                           "- [comm.cc:41|01:36:23]: Failed to connect to the tracker.\n"
                           "- [socket.h:348|01:36:23]: Socket error. Connection refused\nStack trace:\n  [bt] (0) x")
    with pytest.raises(ClusterError) as info:
        cluster_module._join(FakeCollective(refused), JOIN_ARGS, _leader(), timeout=-1)
    message = str(info.value)
    assert "could not join the other 1 hosts at 10.0.0.1:9099" in message
    assert "Failed to connect to the tracker; Socket error. Connection refused" in message
    assert info.value.__cause__ is refused


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _real_join_args(port: int) -> dict[str, Any]:
    return {"dmlc_communicator": "rabit", "dmlc_tracker_uri": "127.0.0.1", "dmlc_tracker_port": port,
            "dmlc_task_id": "1", "dmlc_timeout": 10, "dmlc_retry": 3}


def _waiting_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "waiting for the tracker" in r.getMessage()]


def test_a_host_that_waits_for_the_tracker_says_so_once_and_xgboost_says_nothing(caplog, capsys, recwarn):
    """XGBoost's own joining lines (a warning per failed connection, ``Task 1 got rank 0``) give way to one line.

    Real XGBoost, its tracker started a second after this host (the second host) begins to join.
    """
    from xgboost import collective as coll
    from xgboost.tracker import RabitTracker

    port = _free_port()
    trackers: list[Any] = []

    def start() -> None:
        tracker = RabitTracker(n_workers=1, host_ip="127.0.0.1", port=port, sortby="task", timeout=30)
        tracker.start()
        trackers.append(tracker)

    timer = threading.Timer(1.0, start)
    timer.start()
    cluster = Cluster.from_hosts(["127.0.0.1", "127.0.0.2"], "127.0.0.2")
    with caplog.at_level(logging.INFO, logger="training.collective.cluster"):
        try:
            # dmlc_retry=1: one failed connection per attempt (XGBoost's own retries on one socket take 6 s)
            cluster_module._join(coll, {**_real_join_args(port), "dmlc_retry": 1}, cluster, timeout=30)
            coll.finalize()
        finally:
            timer.join()
            for tracker in trackers:
                tracker.wait_for(timeout=10)
                tracker.free()
    assert _waiting_lines(caplog) == [f"waiting for the tracker at 127.0.0.1:{port}"]
    assert "joined the collective as rank 0 of 1" in caplog.text
    out, err = capsys.readouterr()
    assert "got rank" not in out + err, out + err
    assert not [w for w in recwarn if "connect" in str(w.message).lower()]


def test_a_host_that_never_reaches_the_tracker_fails_in_one_line_after_one_waiting_line(caplog, recwarn):
    port = _free_port()  # no tracker there
    cluster = Cluster.from_hosts(["127.0.0.1", "127.0.0.2"], "127.0.0.2")
    from xgboost import collective as coll

    with caplog.at_level(logging.INFO, logger="training.collective.cluster"), pytest.raises(ClusterError) as info:
        cluster_module._join(coll, {**_real_join_args(port), "dmlc_retry": 1}, cluster, timeout=1)
    assert str(info.value).startswith(f"host 127.0.0.2 could not join the other 1 hosts at 127.0.0.1:{port} within 1 s "
                                      "(Failed to bootstrap the communication group; Bootstrap failed; Failed to "
                                      "connect to the tracker): check that all hosts started")
    assert _waiting_lines(caplog) == [f"waiting for the tracker at 127.0.0.1:{port}"]
    assert not [w for w in recwarn if "connect" in str(w.message).lower()]


def test_other_lines_pass_while_xgboost_joins(capsys, recwarn):
    """Only XGBoost's joining lines are dropped: any other line or warning in the meantime is kept."""
    import warnings

    retries: list[int] = []
    with cluster_module._quiet_bootstrap(lambda: retries.append(1)):
        print("[06:17:11] Task 3 got rank 3")
        print("a line", end="")
        print(" of the job's own")
        warnings.warn("[06:17:05] WARNING: socket.cc:149: Retrying connection to 10.0.0.1 for the 1 time.",
                      UserWarning, stacklevel=1)
        warnings.warn("something else", UserWarning, stacklevel=1)
        print("unfinished", end="")
    assert capsys.readouterr().out == "a line of the job's own\nunfinished"
    assert retries == [1] and [str(w.message) for w in recwarn] == ["something else"]


def test_a_bug_while_joining_is_raised_at_once_not_retried():
    coll = FakeCollective(TypeError("Object of type object is not JSON serializable"))
    with pytest.raises(TypeError):
        cluster_module._join(coll, JOIN_ARGS, _leader(), timeout=60)
    assert coll.inits == 1


def test_leaving_a_broken_group_logs_xgboost_errors_and_raises_bugs(caplog):
    with caplog.at_level(logging.WARNING, logger="training.collective.cluster"):
        cluster_module._leave(FakeCollective(finalize_error=XGBoostError("- [x|0]: peer gone")), None)
    assert "leaving the collective failed: peer gone" in caplog.text
    with pytest.raises(RuntimeError):
        cluster_module._leave(FakeCollective(finalize_error=RuntimeError("a bug")), None)


def test_only_a_broken_collective_is_reported_as_lost_contact() -> None:
    """A check XGBoost failed on every host alike keeps its own text (and, as a bug, its traceback)."""
    from training.collective.cluster import collective_errors

    cluster = Cluster.from_hosts(["127.0.0.1", "127.0.0.2"], "127.0.0.2")
    broken = XGBoostError("[01:36:23] /workspace/src/collective/result.cc:78: \n- [allgather.cc:50|01:36:23]: Ring "
                          "allgather failed, current iteration:0\n- [comm.cc:99|01:36:23]: Poll timeout:20 seconds.")
    with pytest.raises(ClusterError, match=r"^host 127.0.0.2 lost contact with the other hosts \(Ring allgather failed"):
        with collective_errors(cluster):
            raise broken
    for text in ("[01:36:23] /workspace/src/data/data.cc:550: Check failed: valid: Label contains NaN",
                 "Invalid shape of labels: expected a string during training"):  # "string", "during": no "ring"
        with pytest.raises(XGBoostError, match="Label contains NaN|Invalid shape"):
            with collective_errors(cluster):
                raise XGBoostError(text)
