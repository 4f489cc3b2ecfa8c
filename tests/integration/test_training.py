"""Local multi-host jobs: one model from N hosts, empty shards, checkpoints and resume.

Each job runs the container's entry program once per simulated host, as SageMaker does.
"""

import re
import signal
from datetime import datetime

import numpy as np
import pyarrow as pa
import pytest
import xgboost as xgb

from launch.local.hosts import LocalJobResult, run_local_job, start_local_job
from tests.helpers import spilled_ids, synth_hps, wait_for_log
from training import contract
from training.hyperparameters import parse_hyperparameters
from training.read.plan import plan_shard, query_parameters
from training.read.snowflake import Column
from training.train.checkpoints import list_checkpoints

pytestmark = pytest.mark.slow

SNAPSHOT_LINE = re.compile(r"reading shard \d of 3 at snapshot (\S+) \(snapshot=job_start")
FEATURES = ["ID", *(f"F{i}" for i in range(8))]
"""The synthetic table's features, and its shard key: spilled, it tells the rows apart."""
RUN_HPS = synth_hps(num_round=30, features=",".join(FEATURES))


@pytest.fixture(scope="module")
def runs(job_env, tmp_path_factory) -> dict[tuple[str, int], LocalJobResult]:
    """One job in each read mode, on 1 and 3 hosts; several tests read their models, logs and spill files."""
    workdir = tmp_path_factory.mktemp("runs")
    # hash with snapshot=job_start: the hosts read at the one time the leader picked (Time Travel's AT)
    modes = {(mode, hosts): {**RUN_HPS, "read_mode": mode, **({"snapshot": "job_start"} if mode == "hash" else {})}
             for mode, hosts in (("scan", 1), ("scan", 3), ("hash", 3))}
    return {key: run_local_job(hps, hosts=key[1], workdir=workdir, env=job_env, timeout=300)
            for key, hps in modes.items()}


def test_multi_host_models_match_one_host(runs):
    """One model from N hosts, in either read mode; each row of the table trains on exactly one host."""
    for (mode, hosts), result in runs.items():
        assert result.exit_code == 0, (mode, hosts, result.failure)
        assert result.rounds == 30
        log = result.logs[0].read_text()
        assert f"total rows across {hosts} hosts: 50,000" in log
        assert (f"one query for {hosts} host(s)" in log) == (mode == "scan")  # scan: one query, whatever N
        ids = [spilled_ids(d) for d in result.host_dirs]
        assert np.array_equal(np.sort(np.concatenate(ids)), np.arange(50_000))  # disjoint and complete
        assert max(map(len, ids)) - min(map(len, ids)) <= 17_500  # within one chunk (scan) of equal
        # only the leader writes the model
        assert result.model_path is not None
        assert not any((d / "model" / "xgboost-model").exists() for d in result.host_dirs[1:])
    times = {match for d in runs["hash", 3].logs for match in SNAPSHOT_LINE.findall(d.read_text())}
    assert len(times) == 1 and datetime.fromisoformat(times.pop()).tzinfo is not None  # one time, every host
    assert sum(len(SNAPSHOT_LINE.findall(d.read_text())) for d in runs["hash", 3].logs) == 3
    single = runs["scan", 1].final_metrics["validation-rmse"]
    for key in (("scan", 3), ("hash", 3)):
        assert runs[key].final_metrics["validation-rmse"] == pytest.approx(single, rel=0.02)


def test_model_file_is_xgboost_format_and_reproduces_the_reported_metric(runs, stack):
    result = runs["scan", 3]
    assert result.exit_code == 0, result.failure
    raw = result.model_path.read_bytes()
    assert raw[:1] == b"{"  # UBJSON object, XGBoost's own format (never pickle)
    booster = xgb.Booster(model_file=str(result.model_path))
    assert booster.num_boosted_rounds() == 30
    assert booster.feature_names == FEATURES
    # The job's validation rows, read with its own query on one "host", scored by the saved model,
    # give the validation RMSE the job reported (all-reduced across its 3 hosts).
    features = FEATURES
    hps = parse_hyperparameters({**RUN_HPS, "read_mode": "scan"})
    plan = plan_shard([Column(name, 1) for name in [*features, "Y"]], hps.read_options())  # ID: the shard key and a feature
    conn = stack.connect()
    try:
        cursor = conn.cursor()
        cursor.execute(plan.query_template, query_parameters(hps.read_options(), 1, 0))
        rows = cursor.fetch_arrow_all()
    finally:
        conn.close()
    valid = rows.filter(pa.compute.equal(rows.column(rows.num_columns - 1), True))
    x = np.column_stack([valid.column(name).to_numpy(zero_copy_only=False) for name in features])
    y = valid.column("Y").to_numpy(zero_copy_only=False)
    predicted = booster.predict(xgb.DMatrix(x, feature_names=features))
    rmse = float(np.sqrt(np.mean((predicted - y) ** 2)))
    assert 0 < valid.num_rows < rows.num_rows
    assert rmse == pytest.approx(result.final_metrics["validation-rmse"], rel=1e-4)


def _mixed_split_seed(stack, table, fraction):
    """A split_seed that leaves both training and validation rows in a tiny table, found with the
    job's own shard query on the local Snowflake (its HASH differs from Snowflake's)."""
    columns = [Column("ID", 0), Column("F0", 1), Column("Y", 1)]
    plan = plan_shard(columns, parse_hyperparameters({"table": table, "target": "Y", "features": "F0",
                                                      "shard_key": "ID"}).read_options())
    conn = stack.connect()
    try:
        for seed in range(100):
            hps = parse_hyperparameters({"table": table, "target": "Y", "split_seed": str(seed),
                                         "validation_fraction": str(fraction)})
            cursor = conn.cursor()
            cursor.execute(plan.query_template, query_parameters(hps.read_options(), 1, 0))
            flags = [row[-1] for row in cursor.fetchall()]
            if 0 < sum(flags) < len(flags):
                return seed
    finally:
        conn.close()
    raise AssertionError("no seed splits the tiny table")


def test_more_hosts_than_rows_still_trains(run_job, stack):
    stack.ensure_table("TINY", data="synthetic", rows=4, seed=1)
    seed = _mixed_split_seed(stack, "TINY", 0.5)
    result = run_job(synth_hps(table="TINY", num_round=5, validation_fraction=0.5, split_seed=seed), hosts=6)
    assert result.exit_code == 0, result.failure
    logs = [log.read_text() for log in result.logs]
    assert sum("fetched 0 rows" in text for text in logs) >= 2  # 6 hosts, 4 rows: empty shards
    assert "total rows across 6 hosts: 4 " in logs[0]
    assert result.rounds == 5 and result.model_path is not None


def test_stopped_job_resumes_from_its_checkpoint(tmp_path, job_env, run_job):
    hps = synth_hps(num_round=60, checkpoint_interval=5, max_depth=6, eta=0.1)
    reference = run_job(hps, hosts=2)
    assert reference.exit_code == 0, reference.failure

    # the built-in algorithm's save_model_on_termination: the model so far is written too
    job = start_local_job({**hps, "save_model_on_termination": "true"}, hosts=2, workdir=tmp_path, env=job_env,
                          job_name="resumable")
    wait_for_log(job, "\ttrain-rmse", timeout=180)
    job.signal(signal.SIGTERM)  # what SageMaker sends on stop or spot interruption
    stopped = job.wait(timeout=120)
    # the signal reached both hosts, each at its own moment: the message names those that had it by the stop
    assert stopped.exit_code == 1 and re.search(r"^stopped by SIGTERM \(received by (host 127\.0\.0\.[12]|hosts "
                                                r"127\.0\.0\.1, 127\.0\.0\.2)\) after round \d+ of 60; a checkpoint "
                                                r"was saved", stopped.failure)
    assert "(save_model_on_termination)" in stopped.failure
    checkpoints = list_checkpoints(contract.default_checkpoint_dir(stopped.host_dirs[0]))
    assert checkpoints and checkpoints[-1][0] < 60
    assert len(checkpoints) <= 5
    partial = xgb.Booster(model_file=str(stopped.host_dirs[0] / "model" / contract.MODEL_FILE))
    assert 0 < partial.num_boosted_rounds() < 60

    resumed = start_local_job(hps, hosts=2, workdir=tmp_path, env=job_env, job_name="resumable").wait(300)
    assert resumed.exit_code == 0, resumed.failure
    assert f"resuming from checkpoint after round {checkpoints[-1][0]}" in resumed.logs[0].read_text()
    assert resumed.rounds == 60
    assert xgb.Booster(model_file=str(resumed.model_path)).num_boosted_rounds() == 60
    assert resumed.final_metrics["validation-rmse"] == pytest.approx(
        reference.final_metrics["validation-rmse"], rel=0.01)
    assert not contract.failure_file(resumed.host_dirs[0]).exists()


def test_validation_rows_are_never_trained_on(runs):
    for key in (("scan", 3), ("hash", 3)):  # a row's split does not depend on the read mode
        result = runs[key]
        assert result.exit_code == 0, result.failure
        train, valid = set(), set()
        for host_dir in result.host_dirs:
            for name, bucket in (("train.arrow", train), ("validation.arrow", valid)):
                with pa.memory_map(str(host_dir / "spill" / name)) as source:
                    bucket.update(np.asarray(pa.ipc.open_file(source).read_all().column("ID")).astype(int).tolist())
        assert train and valid and not train & valid, key
