"""Faults (issue 6): Snowflake drops mid-fetch, a host dies mid-training, a spot interruption.

The Snowflake cases stop this module's own local Snowflake while a job fetches its shard (one
query per page, so the fetch spans many requests), so they use a persistent server whose tables
survive the restart; the session's shared stack is never stopped.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import xgboost as xgb

from launch.local import LocalJob, LocalStack, start_local_job
from tests.helpers import SECRET_ID, SECRET_PASSWORD, synth_hps
from tests.integration.battery import assert_no_secret, assert_user_failure
from training.checkpoints import list_checkpoints
from training.shards import FETCH_ATTEMPTS

pytestmark = pytest.mark.slow

DROP_TABLE, DROP_ROWS = "DEMO.PUBLIC.DROPS", 50_000
FAST_SNOWFLAKE = {"SNOWFLAKE_LOGIN_TIMEOUT": "5", "SNOWFLAKE_NETWORK_TIMEOUT": "5"}
# Many small pages: the fetch spans many queries, so the server can be stopped between two of them.
DROP_HPS = synth_hps(table=DROP_TABLE, features="ID,F0", num_round=3, fetch_pages=64)
GIVE_UP_SECONDS = 90.0
"""Behaviour bound (not a benchmark) for giving up on a Snowflake that stays down, with 5 s timeouts."""
COLLECTIVE_TIMEOUT = 20


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory):
    """A local Snowflake this module may stop and restart (its tables are files: they survive)."""
    with LocalStack(tmp_path_factory.mktemp("fault-stack"), persist=True) as local:
        local.put_secret(SECRET_ID, local.snowflake_secret(password=SECRET_PASSWORD))
        local.ensure_table(DROP_TABLE.rsplit(".", 1)[-1], data="synthetic", rows=DROP_ROWS, seed=11)
        yield local


def _start(stack: LocalStack, tmp_path: Path, name: str) -> LocalJob:
    env = {**stack.aws_env(), "SNOWFLAKE_SECRET_ID": SECRET_ID, **FAST_SNOWFLAKE}
    return start_local_job(DROP_HPS, hosts=1, workdir=tmp_path, env=env, job_name=name)


def _wait_for_spill(job: LocalJob, timeout: float = 120.0) -> None:
    """Until the first page's rows reach the spill file: the fetch is under way, most pages to go."""
    spill = job.host_dirs[0] / "spill" / "train.arrow"
    deadline = time.monotonic() + timeout
    while not (spill.exists() and spill.stat().st_size > 4096):
        assert job.processes[0][0].poll() is None, job.leader_log()[-3000:]
        assert time.monotonic() < deadline, "the fetch never started"
        time.sleep(0.01)


def _spilled_ids(host_dir: Path) -> np.ndarray:
    ids = []
    for name in ("train.arrow", "validation.arrow"):
        with pa.memory_map(str(host_dir / "spill" / name)) as source:
            ids.append(np.asarray(pa.ipc.open_file(source).read_all().column("ID")))
    return np.concatenate(ids).astype(np.int64)


def test_connection_dropped_mid_fetch_is_retried_from_a_clean_start(own_stack, tmp_path):
    job = _start(own_stack, tmp_path, "drop-and-recover")
    _wait_for_spill(job)
    own_stack.stop_snowflake()
    time.sleep(1.0)
    own_stack.start_snowflake()  # same port, same tables: the retry can succeed
    result = job.wait(timeout=300)
    log = result.logs[0].read_text()
    assert result.exit_code == 0, (result.failure, log[-3000:])
    assert f"connection lost while fetching shard (attempt 1 of {FETCH_ATTEMPTS}" in log
    assert log.count("fetched ") == 1 and f"fetched {DROP_ROWS:,} rows" in log
    ids = np.sort(_spilled_ids(result.host_dirs[0]))
    assert np.array_equal(ids, np.arange(DROP_ROWS))  # no duplicate, no missing row
    assert "total rows across 1 hosts: 50,000" in log and result.rounds == 3
    assert_no_secret(result.host_dirs, SECRET_PASSWORD)


def test_connection_that_stays_down_fails_after_bounded_attempts(own_stack, tmp_path):
    job = _start(own_stack, tmp_path, "drop-for-good")
    _wait_for_spill(job)
    own_stack.stop_snowflake()
    started = time.monotonic()
    try:
        result = job.wait(timeout=300)
        seconds = time.monotonic() - started
    finally:
        own_stack.start_snowflake()
    line = assert_user_failure(result, f"lost the connection to Snowflake while fetching shard 0 of 1 "
                                       f"({FETCH_ATTEMPTS} attempts")
    assert "check the network path to Snowflake" in line
    log = result.logs[0].read_text()
    assert log.count("connection lost while fetching shard") == FETCH_ATTEMPTS - 1
    assert seconds < GIVE_UP_SECONDS, seconds
    assert_no_secret(result.host_dirs, SECRET_PASSWORD)


def _wait_for_log(job: LocalJob, text: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in job.leader_log():
        assert job.processes[0][0].poll() is None, job.leader_log()[-3000:]
        assert time.monotonic() < deadline, f"{text!r} never appeared:\n{job.leader_log()[-2000:]}"
        time.sleep(0.05)


def test_a_dead_host_fails_the_others_within_the_collective_timeout(tmp_path, job_env):
    hps = synth_hps(num_round=100_000, collective_timeout=COLLECTIVE_TIMEOUT, checkpoint_interval=1000)
    job = start_local_job(hps, hosts=2, workdir=tmp_path, env=job_env, job_name="host-dies")
    _wait_for_log(job, "\ttrain-rmse")
    leader, worker = job.processes[0][0], job.processes[1][0]
    worker.kill()  # SIGKILL: no goodbye to the collective
    killed = time.monotonic()
    try:
        leader.wait(timeout=COLLECTIVE_TIMEOUT + 60)
    except Exception:  # a hung leader: stop it, then fail below
        leader.kill()
    seconds = time.monotonic() - killed
    result = job.wait(timeout=60)
    assert result.exit_codes[1] == -signal.SIGKILL
    assert seconds < COLLECTIVE_TIMEOUT + 30, f"the leader took {seconds:.0f} s to notice"
    assert result.exit_codes[0] == 1
    line = (result.host_dirs[0] / "output" / "failure").read_text().strip()
    assert "lost contact with the other hosts" in line and "another host failed or was stopped" in line, line
    log = result.logs[0].read_text()
    assert f"training failed: {line}" in log and "Traceback" not in log
    assert_no_secret(result.host_dirs, SECRET_PASSWORD)


def test_sigterm_writes_a_checkpoint_at_the_stop_round_and_the_restart_finishes(tmp_path, job_env):
    # Checkpoints only every 1,000 rounds: any checkpoint found was written by the stop itself.
    hps = synth_hps(num_round=150, checkpoint_interval=1000)
    job = start_local_job(hps, hosts=1, workdir=tmp_path, env=job_env, job_name="spot")
    _wait_for_log(job, "[10]\ttrain-rmse")
    job.signal(signal.SIGTERM)
    stopped = job.wait(timeout=120)
    line = assert_user_failure(stopped, "stopped by SIGTERM after round ")
    stop_round = int(line.split("after round ")[1].split()[0])
    assert [rounds for rounds, _ in list_checkpoints(stopped.host_dirs[0] / "checkpoints")] == [stop_round]
    assert 10 <= stop_round < 150

    resumed = start_local_job(hps, hosts=1, workdir=tmp_path, env=job_env, job_name="spot").wait(300)
    assert resumed.exit_code == 0, resumed.failure
    assert f"resuming from checkpoint after round {stop_round}" in resumed.logs[0].read_text()
    assert resumed.rounds == 150
    assert xgb.Booster(model_file=str(resumed.model_path)).num_boosted_rounds() == 150
