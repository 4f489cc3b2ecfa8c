"""External memory: the same spill files give the same model whichever matrices they are built into.

``build_matrices`` with a cache folder builds XGBoost's ``ExtMemQuantileDMatrix`` (pages cached on
the spill volume); without, the in-memory ``QuantileDMatrix``. Both sketch the same rows in the
same order, so they cut the same bins and grow the same trees. A 2-host job forced to external
memory (``memory_budget_mb=1``) is the end-to-end check.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import xgboost as xgb

from tests.helpers import synth_hps
from training import contract
from training.hyperparameters import parse_hyperparameters
from training.model.booster import PLAN_ATTRIBUTE
from training.read.columns import FEATURE, LABEL, ColumnPlan, ColumnSpec
from training.train.dataset import CACHE_DIR, build_matrices

REGIONS = ("north", "south", "east", "west", "coast")


def _plan() -> ColumnPlan:
    specs = [ColumnSpec(f"F{i}", "REAL", "numeric", FEATURE) for i in range(4)]
    specs += [ColumnSpec("REGION", "TEXT", "categorical", FEATURE), ColumnSpec("Y", "REAL", "numeric", LABEL)]
    return ColumnPlan(tuple(specs)).with_vocabularies({"REGION": REGIONS})


def _spill(path, plan: ColumnPlan, rows: int, seed: int) -> None:
    """An Arrow spill file as a job writes it: several record batches, NULLs in a feature."""
    rng = np.random.default_rng(seed)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, plan.spill_schema) as writer:
        for _ in range(3):
            x = rng.normal(size=(rows // 3, 4)).astype(np.float32)
            region = rng.integers(0, len(REGIONS), rows // 3)
            y = 2 * np.sin(x[:, 0]) + x[:, 1] * x[:, 2] + region - x[:, 3] + rng.normal(scale=0.3, size=rows // 3)
            columns = [pa.array(x[:, i], mask=rng.random(rows // 3) < 0.05 if i == 3 else None) for i in range(4)]
            columns += [pa.array(np.array(REGIONS)[region]), pa.array(y.astype(np.float32))]
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=plan.spill_schema))


def test_external_memory_model_matches_the_in_memory_model(tmp_path):
    plan, spill = _plan(), tmp_path / "spill"
    spill.mkdir()
    _spill(spill / "train.arrow", plan, 30_000, seed=1)
    _spill(spill / "validation.arrow", plan, 6_000, seed=2)
    params = {"tree_method": "hist", "max_depth": 5, "eta": 0.3, "max_bin": 64, "max_cat_to_onehot": 1, "nthread": 2}
    models, metrics = {}, {}
    for kind, cache in (("memory", None), ("external", spill / CACHE_DIR)):
        dtrain, dvalid = build_matrices(spill / "train.arrow", spill / "validation.arrow", plan, 64, 2, cache)
        if cache is not None:
            assert isinstance(dtrain, xgb.ExtMemQuantileDMatrix) and isinstance(dvalid, xgb.ExtMemQuantileDMatrix)
            pages = sorted(p.name for p in cache.iterdir())
            assert [p.split("-")[0] for p in pages] == ["train", "validation"], pages  # on the spill volume
        log: dict = {}
        models[kind] = xgb.train(params, dtrain, 10, evals=[(dvalid, "validation")], evals_result=log,
                                 verbose_eval=False)
        metrics[kind] = log["validation"]["rmse"]
        assert (dtrain.num_row(), dvalid.num_row()) == (30_000, 6_000)
        del dtrain, dvalid
    assert not list((spill / CACHE_DIR).iterdir())  # XGBoost deletes its pages with the matrix
    assert metrics["external"] == pytest.approx(metrics["memory"], rel=1e-5)
    assert metrics["memory"][-1] < 0.7 * metrics["memory"][0]  # it learned something
    features, _, _ = plan.matrix(pa.ipc.open_file(pa.memory_map(str(spill / "validation.arrow"))).get_batch(0))
    data = xgb.DMatrix(features, feature_names=plan.xgboost_feature_names, feature_types=plan.feature_types,
                       enable_categorical=True)
    np.testing.assert_allclose(models["external"].predict(data), models["memory"].predict(data), atol=1e-4)


@pytest.mark.slow
def test_two_host_job_forced_to_external_memory(run_job, tmp_path):
    """``memory_budget_mb=1``: every host builds external-memory matrices; the model matches in-memory training."""
    hps = synth_hps(num_round=10, memory_budget_mb=1)
    result = run_job(hps, hosts=2)
    assert result.exit_code == 0, result.failure
    logs = [path.read_text() for path in result.logs]
    assert "matrices: ExtMemQuantileDMatrix (external memory, cached on the spill volume): 2 host(s) over" in logs[0]
    assert "matrices:" not in logs[1]  # the leader logs the choice once
    spills = [contract.default_spill_dir(host_dir) for host_dir in result.host_dirs]
    assert all((spill / CACHE_DIR).is_dir() for spill in spills)
    # The same rows trained in memory in this process: the job's metric within 2% (as N hosts vs one).
    booster = xgb.Booster(model_file=str(result.model_path))
    plan = ColumnPlan.from_json(booster.attr(PLAN_ATTRIBUTE))
    for name in ("train.arrow", "validation.arrow"):
        tables = [pa.ipc.open_file(pa.memory_map(str(spill / name))).read_all() for spill in spills]
        with pa.OSFile(str(tmp_path / name), "wb") as sink, pa.ipc.new_file(sink, plan.spill_schema) as writer:
            for table in tables:
                writer.write_table(table.select(plan.names))
    dtrain, dvalid = build_matrices(tmp_path / "train.arrow", tmp_path / "validation.arrow", plan, 256)
    params = parse_hyperparameters(hps).xgboost_params()
    reference = xgb.train(params, dtrain, 10).eval(dvalid, "validation")
    rmse = float(reference.rsplit(":", 1)[1])
    assert result.final_metrics["validation-rmse"] == pytest.approx(rmse, rel=0.02)
