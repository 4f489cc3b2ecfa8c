"""Faults (issue 6): Snowflake drops mid-fetch, a host or the leader dies, a spot interruption.

The Snowflake cases stop a local Snowflake of their own while a job fetches its shard (one query
per page, so the fetch spans many requests); those servers are persistent, so their tables survive
the restart, and the session's shared stack is never stopped.

The four scenarios mostly wait (on network timeouts, on the collective timeout), so they run side
by side in one module fixture; each test then checks one scenario's observations.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from launch.local.hosts import LocalJob, start_local_job
from launch.local.result_chunks import ChunkSizes
from launch.local.services import LocalStack
from tests.helpers import SECRET_ID, SECRET_PASSWORD, spilled_ids, synth_hps, wait_for_log
from tests.integration.battery import (
    assert_no_secret,
    assert_user_failure,
    check_user_failure,
    leaks,
    run_parallel,
)
from training import contract
from training.read.hash_fetch import FETCH_ATTEMPTS
from training.train.checkpoints import list_checkpoints

pytestmark = pytest.mark.slow

DROP_TABLE, DROP_ROWS = "DEMO.PUBLIC.DROPS", 50_000
FAST_SNOWFLAKE = {contract.LOGIN_TIMEOUT_ENV: "5", contract.NETWORK_TIMEOUT_ENV: "5"}
# read_mode=hash, many small pages: the fetch spans many queries, so the server can be stopped between two.
DROP_HPS = synth_hps(table=DROP_TABLE, features="ID,F0", num_round=3, fetch_pages=64, read_mode="hash")
GIVE_UP_SECONDS = 90.0
"""Behaviour bound (not a benchmark) for giving up on a Snowflake that stays down, with 5 s timeouts."""
COLLECTIVE_TIMEOUT = 20
CHUNK_GIVE_UP_SECONDS = 150.0
"""Behaviour bound for a chunk that answers 403 for good: the connector's 10 tries with back-off, then one line."""
SPOT_ROUNDS = 150


def _own_stack(workdir: Path) -> LocalStack:
    """A persistent local Snowflake (tables are files, so they survive a restart) with the test secret."""
    local = LocalStack(workdir, persist=True).__enter__()
    try:
        local.put_secret(SECRET_ID, local.snowflake_secret(password=SECRET_PASSWORD))
        local.ensure_table(DROP_TABLE.rsplit(".", 1)[-1], data="synthetic", rows=DROP_ROWS, seed=11)
    except BaseException:
        local.stop()
        raise
    return local


def _start_fetching(stack: LocalStack, workdir: Path, name: str) -> LocalJob:
    """Start a 1-host job on the stack; return once the first page's rows reach the spill file."""
    env = {**stack.aws_env(), contract.SECRET_ID_ENV: SECRET_ID, **FAST_SNOWFLAKE}
    job = start_local_job(DROP_HPS, hosts=1, workdir=workdir, env=env, job_name=name)
    spill = job.host_dirs[0] / "spill" / "train.arrow"
    deadline = time.monotonic() + 120
    while not (spill.exists() and spill.stat().st_size > 4096):
        assert job.processes[0][0].poll() is None, job.leader_log()[-3000:]
        assert time.monotonic() < deadline, "the fetch never started"
        time.sleep(0.01)
    return job


def _drop_and_recover(workdir: Path) -> dict[str, Any]:
    stack = _own_stack(workdir / "stack")
    try:
        job = _start_fetching(stack, workdir, "drop-and-recover")
        stack.stop_snowflake()
        time.sleep(1.0)
        stack.start_snowflake()  # same port, same tables: the retry can succeed
        return {"result": job.wait(timeout=300)}
    finally:
        stack.stop()


def _drop_for_good(workdir: Path) -> dict[str, Any]:
    stack = _own_stack(workdir / "stack")
    try:
        job = _start_fetching(stack, workdir, "drop-for-good")
        stack.stop_snowflake()
        started = time.monotonic()
        result = job.wait(timeout=300)
        return {"result": result, "seconds": time.monotonic() - started}
    finally:
        stack.stop()


def _chunks_forbidden(workdir: Path) -> dict[str, Any]:
    """read_mode=scan against a local Snowflake whose chunk URLs have all expired (every GET: 403)."""
    with LocalStack(workdir, persist=False, chunks=ChunkSizes(ttl_s=0.0)) as stack:
        stack.put_secret(SECRET_ID, stack.snowflake_secret(password=SECRET_PASSWORD))
        stack.ensure_table("CHUNKS", data="synthetic", rows=5_000, seed=5)
        env = {**stack.aws_env(), contract.SECRET_ID_ENV: SECRET_ID, **FAST_SNOWFLAKE}
        started = time.monotonic()
        result = start_local_job(synth_hps(table="DEMO.PUBLIC.CHUNKS", num_round=3), hosts=1, workdir=workdir,
                                 env=env, job_name="chunks-forbidden").wait(timeout=300)
        return {"result": result, "seconds": time.monotonic() - started}


def _score_into_existing_target(stack: LocalStack, workdir: Path, env: dict[str, str], source: str, target: str,
                                job_name: str) -> dict[str, Any]:
    """A 2-host scoring job of ``source`` (the synthetic table's F0, F1) into ``target``, which holds one row first;
    the job's result, then the target's rows and the staging tables left."""
    from launch.local.hosts import container_command
    from training.model.booster import embed_plan
    from training.read.columns import FEATURE, LABEL, ColumnPlan, ColumnSpec

    plan = ColumnPlan((ColumnSpec("F0", "REAL", "numeric", FEATURE), ColumnSpec("F1", "REAL", "numeric", FEATURE),
                       ColumnSpec("Y", "REAL", "numeric", LABEL)))
    x = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(x, x[:, 0], feature_names=["F0", "F1"]), 3)
    embed_plan(booster, plan)
    model = workdir / f"{job_name}-model"
    model.mkdir()
    booster.save_model(model / contract.MODEL_FILE)
    conn = stack.connect()
    try:
        # the columns the job writes (as a scheduled rerun finds them): the replacement is an INSERT OVERWRITE
        conn.cursor().execute(f"CREATE TABLE {target} AS SELECT 7 AS ID, 0.5 AS PREDICTION, 'm' AS MODEL_NAME, "
                              "'1' AS MODEL_VERSION, 'r' AS RUN_ID, CAST('2026-01-01' AS TIMESTAMP_NTZ) AS SCORED_AT")
        result = start_local_job({"source_table": source, "target_table": target, "key_columns": "ID",
                                  "collective_timeout": "120"}, 2, workdir,
                                 {**env, contract.SCORING_MODEL_ENV: str(model)}, job_name,
                                 command=container_command(contract.SCORE_COMMAND)).wait(timeout=300)
        cursor = conn.cursor()
        cursor.execute(f"SELECT ID, PREDICTION FROM {target}")  # noqa: S608
        rows = cursor.fetchall()
        cursor.execute("SHOW TABLES LIKE '%__SCORING_%' IN SCHEMA DEMO.PUBLIC")
        staging = cursor.fetchall()
    finally:
        conn.close()
    return {"result": result, "target": [(int(k), float(p)) for k, p in rows], "staging": staging}


def _scoring_faults(workdir: Path) -> dict[str, Any]:
    """Two 2-host scoring jobs into targets that exist, on one local Snowflake whose chunk URLs have all expired
    and whose ``LOCKED_SCORES`` the role may not write (its one privilege): ``chunks`` scores 1,200 rows (the
    inline part, and one chunk that cannot be downloaded); ``read-only`` scores 900 (inline only: readable) into
    the locked target."""
    with LocalStack(workdir, persist=False, chunks=ChunkSizes(ttl_s=0.0),
                    read_only_tables=("DEMO.PUBLIC.LOCKED_SCORES",)) as stack:
        stack.put_secret(SECRET_ID, stack.snowflake_secret(password=SECRET_PASSWORD))
        stack.ensure_table("CHUNKS", data="synthetic", rows=1_200, seed=5)
        stack.ensure_table("TO_SCORE", data="synthetic", rows=900, seed=5)
        env = {**stack.aws_env(), contract.SECRET_ID_ENV: SECRET_ID, **FAST_SNOWFLAKE}
        return {"chunks": _score_into_existing_target(stack, workdir, env, "DEMO.PUBLIC.CHUNKS",
                                                      "DEMO.PUBLIC.CHUNK_SCORES", "chunks-forbidden-scoring"),
                "read-only": _score_into_existing_target(stack, workdir, env, "DEMO.PUBLIC.TO_SCORE",
                                                         "DEMO.PUBLIC.LOCKED_SCORES", "read-only-target")}


def _host_dies(workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    hps = synth_hps(num_round=100_000, collective_timeout=COLLECTIVE_TIMEOUT, checkpoint_interval=1000)
    job = start_local_job(hps, hosts=2, workdir=workdir, env=env, job_name="host-dies")
    wait_for_log(job, "\ttrain-rmse")
    leader, worker = job.processes[0][0], job.processes[1][0]
    worker.kill()  # SIGKILL: no goodbye to the collective
    killed = time.monotonic()
    try:
        leader.wait(timeout=COLLECTIVE_TIMEOUT + 60)
    except Exception:  # noqa: BLE001  a hung leader: stop it; the test fails on the time
        leader.kill()
    seconds = time.monotonic() - killed
    return {"result": job.wait(timeout=60), "seconds": seconds}


def _leader_dies(workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    """read_mode=scan on 2 hosts; the leader is killed as it starts its one query, before dealing."""
    job = start_local_job(synth_hps(collective_timeout=COLLECTIVE_TIMEOUT), hosts=2, workdir=workdir, env=env,
                          job_name="leader-dies")
    deadline = time.monotonic() + 120
    while "reading " not in job.leader_log():
        assert job.processes[0][0].poll() is None and time.monotonic() < deadline, job.leader_log()[-3000:]
        time.sleep(0.005)
    job.processes[0][0].kill()  # SIGKILL: no goodbye
    killed = time.monotonic()
    result = job.wait(timeout=COLLECTIVE_TIMEOUT + 120)
    return {"result": result, "seconds": time.monotonic() - killed, "leader_log": job.leader_log()}


def _spot(workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    # Checkpoints only every 1,000 rounds: any checkpoint found was written by the stop itself.
    hps = synth_hps(num_round=SPOT_ROUNDS, checkpoint_interval=1000)
    job = start_local_job(hps, hosts=1, workdir=workdir, env=env, job_name="spot")
    wait_for_log(job, "[10]\ttrain-rmse")
    job.signal(signal.SIGTERM)
    stopped = job.wait(timeout=120)
    host_dir = stopped.host_dirs[0]
    # the restart reuses the host tree (that is how it finds the checkpoint): keep what the stop left
    seen = {"stopped": stopped, "failure": contract.failure_file(host_dir).read_text(),
            "log": stopped.logs[0].read_text(), "checkpoints": [r for r, _ in list_checkpoints(contract.default_checkpoint_dir(host_dir))],
            "leaks": leaks(stopped.host_dirs, SECRET_PASSWORD)}
    seen["resumed"] = start_local_job(hps, hosts=1, workdir=workdir, env=env, job_name="spot").wait(300)
    return seen


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory, job_env: dict[str, str]) -> dict[str, dict[str, Any]]:
    dirs = {name: tmp_path_factory.mktemp(name) for name in ("recover", "down", "dies", "spot", "chunks", "leader",
                                                              "scoring")}
    return run_parallel({
        "chunks": lambda: _chunks_forbidden(dirs["chunks"]),
        "scoring": lambda: _scoring_faults(dirs["scoring"]),
        "recover": lambda: _drop_and_recover(dirs["recover"]),
        "down": lambda: _drop_for_good(dirs["down"]),
        "dies": lambda: _host_dies(dirs["dies"], job_env),
        "leader": lambda: _leader_dies(dirs["leader"], job_env),
        "spot": lambda: _spot(dirs["spot"], job_env),
    })


def test_connection_dropped_mid_fetch_is_retried_from_a_clean_start(faults):
    result = faults["recover"]["result"]
    log = result.logs[0].read_text()
    assert result.exit_code == 0, (result.failure, log[-3000:])
    assert f"connection lost while fetching shard (attempt 1 of {FETCH_ATTEMPTS}" in log
    assert log.count("fetched ") == 1 and f"fetched {DROP_ROWS:,} rows" in log
    ids = np.sort(spilled_ids(result.host_dirs[0]))
    assert np.array_equal(ids, np.arange(DROP_ROWS))  # no duplicate, no missing row
    assert f"total rows across 1 hosts: {DROP_ROWS:,}" in log and result.rounds == 3
    assert "Traceback" not in log
    assert_no_secret(result.host_dirs, SECRET_PASSWORD)


def test_connection_that_stays_down_fails_after_bounded_attempts(faults):
    result, seconds = faults["down"]["result"], faults["down"]["seconds"]
    line = assert_user_failure(result, f"lost the connection to Snowflake while fetching shard 0 of 1 "
                                       f"({FETCH_ATTEMPTS} attempts")
    assert "check the network path to Snowflake" in line
    log = result.logs[0].read_text()
    assert log.count("connection lost while fetching shard") == FETCH_ATTEMPTS - 1
    assert seconds < GIVE_UP_SECONDS, seconds
    assert_no_secret(result.host_dirs, SECRET_PASSWORD)


def test_a_result_chunk_that_stays_forbidden_fails_in_one_line_without_its_url(faults):
    """The connector retries each chunk (403 is what an expired URL answers); then one line, no URL, no key."""
    result, seconds = faults["chunks"]["result"], faults["chunks"]["seconds"]
    line = assert_user_failure(result, "could not download result batch ")
    assert "a result expires about 6 hours after its query; restart the job" in line
    assert seconds < CHUNK_GIVE_UP_SECONDS, seconds
    assert_no_secret(result.host_dirs, SECRET_PASSWORD, "sig=", "x-amz-server-side-encryption")


def test_a_scoring_job_whose_batches_stay_forbidden_fails_in_one_line_and_leaves_the_target(faults):
    """Batch scoring reads as training does: the same bounded retries, the same line on every host; the target
    that existed keeps its rows and no staging table stays."""
    scoring = faults["scoring"]["chunks"]
    line = assert_user_failure(scoring["result"], "could not download result batch ", "scoring")
    assert all(code == 1 for code in scoring["result"].exit_codes), scoring["result"].exit_codes
    assert "a result expires about 6 hours after its query; restart the job" in line
    assert scoring["target"] == [(7, 0.5)] and scoring["staging"] == []
    assert_no_secret(scoring["result"].host_dirs, SECRET_PASSWORD, "sig=", "x-amz-server-side-encryption")


def test_a_target_the_role_cannot_replace_fails_the_job_in_one_line_and_keeps_its_rows(faults):
    """Every host wrote its part; the leader's replacement is refused (003001): one line naming the privilege,
    every host fails, the target keeps its rows and the staging table is dropped."""
    scoring = faults["scoring"]["read-only"]
    line = assert_user_failure(scoring["result"], "could not replace the target's rows (INSERT and DELETE on it): ",
                               "scoring")
    assert ("SQL access control error: Insufficient privileges to operate on table 'LOCKED_SCORES' (Snowflake "
            "error 3001); the target is unchanged") in line
    assert scoring["target"] == [(7, 0.5)] and scoring["staging"] == []


def test_a_dead_host_fails_the_others_within_the_collective_timeout(faults):
    result, seconds = faults["dies"]["result"], faults["dies"]["seconds"]
    assert result.exit_codes[1] == -signal.SIGKILL
    assert seconds < COLLECTIVE_TIMEOUT + 30, f"the leader took {seconds:.0f} s to notice"
    assert result.exit_codes[0] == 1
    line = contract.failure_file(result.host_dirs[0]).read_text().strip()
    assert "lost contact with the other hosts" in line and "another host failed or was stopped" in line, line
    assert "result.cc" not in line  # the cause, not XGBoost's source location
    log = result.logs[0].read_text()
    assert f"training failed: {line}" in log and "Traceback" not in log
    assert_no_secret(result.host_dirs, SECRET_PASSWORD)


def test_a_leader_that_dies_before_dealing_fails_the_other_hosts_in_bounded_time(faults):
    result, seconds = faults["leader"]["result"], faults["leader"]["seconds"]
    assert "one query for" not in faults["leader"]["leader_log"]  # it died before dealing the batches
    assert result.exit_codes[0] == -signal.SIGKILL and result.exit_codes[1] == 1
    assert seconds < COLLECTIVE_TIMEOUT + 45, f"host 2 took {seconds:.0f} s to give up"
    line = contract.failure_file(result.host_dirs[1]).read_text().strip()
    assert "\n" not in line and ("could not join the other 1 hosts" in line or "lost contact with the other hosts"
                                  in line), line
    log = result.logs[1].read_text()
    assert f"training failed: {line}" in log and "Traceback" not in log
    if "could not join" in line:  # XGBoost's warning per failed connection gave way to one line
        assert log.count("waiting for the tracker at 127.0.0.1:") == 1 and "Failed to connect to:" not in log, log
    assert_no_secret(result.host_dirs, SECRET_PASSWORD)


def test_sigterm_writes_a_checkpoint_at_the_stop_round_and_the_restart_finishes(faults):
    spot = faults["spot"]
    stopped, resumed = spot["stopped"], spot["resumed"]
    line = check_user_failure(stopped.exit_codes, spot["failure"], spot["log"], "stopped by SIGTERM (received by host 127.0.0.1) after round ")
    stop_round = int(line.split("after round ")[1].split()[0])
    assert faults["spot"]["checkpoints"] == [stop_round] and 10 <= stop_round < SPOT_ROUNDS
    assert spot["leaks"] == []
    assert resumed.exit_code == 0, resumed.failure
    resumed_log = resumed.logs[0].read_text()
    assert f"resuming from checkpoint after round {stop_round}" in resumed_log
    assert "re-opened the result of query " in resumed_log  # the snapshot the checkpoint was trained on
    assert resumed.rounds == SPOT_ROUNDS
    assert xgb.Booster(model_file=str(resumed.model_path)).num_boosted_rounds() == SPOT_ROUNDS
    assert_no_secret(resumed.host_dirs, SECRET_PASSWORD)
