"""Every objective family trains across hosts as on one host (issue 13, item 2), through the real container.

One small table per family (``launch.datasets``): binary on the mixed table's text labels, quantile
on its ``Spend``, ranking on a table whose query groups are scattered through it, survival on a table
with right-censored rows. Each family runs on several hosts and on one; the hosts all-reduce every
metric, so the validation metric must agree within 2% and appear in the leader's log every round.
Multiclass is test_real_tables' job: it trains one on its mixed table, on 2 hosts and on one. The
ranking job runs on 3 hosts with 2 pages each, and its spill files prove that no query group was
split across hosts and that each host's groups are contiguous. The jobs run side by side.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import xgboost as xgb

from launch import datasets
from launch.local.hosts import LocalJobResult, run_local_job
from launch.local.services import LocalStack
from tests.helpers import assert_trains_on_several_hosts_as_on_one, per_round
from tests.integration.battery import assert_user_failure, run_parallel
from training import contract
from training.model import booster as table_model

pytestmark = pytest.mark.slow

ROWS = 3_000
MIXED, RANKING, SURVIVAL, NULL_GROUP = ("DEMO.PUBLIC.OBJ_MIXED", "DEMO.PUBLIC.OBJ_RANKING", "DEMO.PUBLIC.OBJ_SURVIVAL",
                                        "DEMO.PUBLIC.OBJ_NULL_GROUP")
BASE = {"num_round": "10", "max_depth": "4", "eta": "0.2", "collective_timeout": "120"}
MIXED_FEATURES = '"Price","Units Sold","is_member","region","noise"'

FAMILIES: dict[str, tuple[dict[str, str], str, int]] = {
    # family: (hyperparameters, the validation metric compared, hosts of the distributed run)
    "binary": ({"table": MIXED, "target": '"churned"', "features": MIXED_FEATURES, "shard_key": '"id"',
                "objective": "binary:logistic", "eval_metric": "logloss,auc,error@0.6"}, "logloss", 2),
    "quantile": ({"table": MIXED, "target": '"Spend"', "features": MIXED_FEATURES, "shard_key": '"id"',
                  "objective": "reg:quantileerror", "quantile_alpha": "0.8"}, "quantile", 2),
    "ranking": ({"table": RANKING, "target": datasets.RANKING_LABEL, "group_column": datasets.RANKING_GROUP,
                 "features": "F0,F1,F2,F3", "objective": "rank:ndcg", "eval_metric": "ndcg@5,ndcg-",
                 "fetch_pages": "2"}, "ndcg@5", 3),
    "survival_aft": ({"table": SURVIVAL, "label_lower_column": datasets.SURVIVAL_LOWER,
                      "label_upper_column": datasets.SURVIVAL_UPPER, "features": "F0,F1,F2,F3",
                      "shard_key": "ID", "objective": "survival:aft", "aft_loss_distribution": "logistic",
                      "eval_metric": "aft-nloglik,interval-regression-accuracy"}, "aft-nloglik", 2),
}


def _seed(stack: LocalStack, workdir: Path) -> None:
    tables = {MIXED: datasets.mixed_chunk(0, ROWS, seed=3),
              RANKING: datasets.ranking_chunk(0, ROWS, seed=5),
              SURVIVAL: datasets.survival_chunk(0, ROWS, seed=9)}
    ranking = tables[RANKING]
    nulls = pa.array(np.arange(ROWS) % 500 == 7)  # 6 rows without a query
    tables[NULL_GROUP] = ranking.set_column(1, datasets.RANKING_GROUP, pc.if_else(
        nulls, pa.scalar(None, pa.string()), ranking.column(datasets.RANKING_GROUP)))
    conn = stack.connect()
    try:
        for name, table in tables.items():
            path = workdir / f"{name.rsplit('.', 1)[-1].lower()}.parquet"
            pq.write_table(table, path)
            datasets.load_parquet(conn, name.rsplit(".", 1)[-1], path)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def outcomes(stack: LocalStack, job_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, LocalJobResult]:
    workdir = tmp_path_factory.mktemp("objectives")
    _seed(stack, workdir)
    plan: dict[str, tuple[dict[str, str], int]] = {}
    for family, (hps, _, hosts) in FAMILIES.items():
        plan[f"{family}-{hosts}"] = ({**BASE, **hps}, hosts)
        plan[f"{family}-1"] = ({**BASE, **hps}, 1)
    cox = {**BASE, "table": SURVIVAL, "target": datasets.SURVIVAL_TIME, "features": "F0,F1,F2,F3",
           "objective": "survival:cox"}
    plan["cox-1"] = (cox, 1)
    plan["cox-2"] = (cox, 2)
    ranking = FAMILIES["ranking"][0]
    plan["null_group"] = ({**BASE, **ranking, "table": NULL_GROUP}, 1)
    plan["map_graded"] = ({**BASE, **ranking, "objective": "rank:map", "eval_metric": "map@5"}, 1)

    def job(name: str, hps: dict[str, str], hosts: int) -> Any:
        return lambda: run_local_job(hps, hosts=hosts, workdir=workdir, env=job_env, job_name=name, timeout=300)

    return run_parallel({name: job(name, *spec) for name, spec in plan.items()}, workers=3)


def _ok(result: LocalJobResult) -> str:
    assert result.exit_code == 0, result.failure
    return result.logs[0].read_text()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_trains_on_several_hosts_as_on_one(outcomes, family) -> None:
    _, metric, hosts = FAMILIES[family]
    assert_trains_on_several_hosts_as_on_one(outcomes[f"{family}-{hosts}"], outcomes[f"{family}-1"], metric, hosts,
                                             ROWS, int(BASE["num_round"]), higher_is_better=family == "ranking")


def test_ranking_groups_are_whole_on_one_host_and_contiguous(outcomes) -> None:
    result = outcomes["ranking-3"]
    log = _ok(result)
    assert "read_mode=scan is read as hash for rank:ndcg" in log
    seen: dict[str, int] = {}
    for rank, host_dir in enumerate(result.host_dirs):
        for name in ("train.arrow", "validation.arrow"):
            with pa.memory_map(str(contract.default_spill_dir(host_dir) / name)) as source:
                groups = pa.ipc.open_file(source).read_all().column(datasets.RANKING_GROUP).to_pylist()
            runs = [g for i, g in enumerate(groups) if i == 0 or g != groups[i - 1]]
            assert len(runs) == len(set(runs)), f"host {rank} {name}: a group's rows are not contiguous"
            for group in set(runs):
                assert seen.setdefault(group, rank) == rank, f"group {group} is on hosts {seen[group]} and {rank}"
    assert len(seen) == len(set(datasets.ranking_chunk(0, ROWS, seed=5).column(datasets.RANKING_GROUP).to_pylist()))
    # the model scores raw rows from their features only: the group column is not one
    booster, plan = table_model.load(result.model_path)
    assert plan.feature_names == ["F0", "F1", "F2", "F3"] and plan.group.name == datasets.RANKING_GROUP
    raw = datasets.ranking_chunk(0, 50, seed=5).to_pandas()
    scores = table_model.predict_rows(booster, plan, raw)["prediction"].to_numpy()
    assert np.corrcoef(scores, raw[datasets.RANKING_LABEL])[0, 1] > 0.5


def test_the_ranking_evaluation_is_ndcg_by_k_over_every_host_s_groups_as_xgboost_counts_it(outcomes) -> None:
    """The leader's NDCG@k (each host summed its own whole groups) equals all validation groups scored on one
    host, and at k=5 equals XGBoost's own validation-ndcg@5."""
    from training.evaluation import report as evaluation
    from training.train.dataset import matrix_batches

    result = outcomes["ranking-3"]
    log = _ok(result)
    logged = dict(re.findall(r"validation-(ndcg@\d+) ([0-9.e+-]+)", log.split("evaluation: ", 1)[1].split("\n")[0]))
    assert set(logged) == {"ndcg@1", "ndcg@3", "ndcg@10"}  # ndcg@5: XGBoost's own is the run's

    booster, plan = table_model.load(result.model_path)

    def batches():
        for rank, host in enumerate(result.host_dirs):
            for f in matrix_batches(contract.default_spill_dir(host) / "validation.arrow", plan):
                margin = booster.predict(xgb.DMatrix(f["data"], feature_names=plan.xgboost_feature_names),
                                         output_margin=True)
                yield evaluation.Scores.of(f["label"], margin, groups=f["qid"].astype(np.int64) + rank * 10**6)

    same = lambda values: values  # noqa: E731 - one host holds every group
    expected = evaluation.evaluate(evaluation.RANKING, lambda: evaluation.whole_groups(batches()), same, same)
    for name, text in logged.items():
        assert float(text) == pytest.approx(expected.scalars[name], rel=1e-5), name
    assert expected.scalars["ndcg@5"] == pytest.approx(result.final_metrics["validation-ndcg@5"], rel=1e-5)


def test_survival_aft_predicts_times_from_features_only(outcomes) -> None:
    result = outcomes["survival_aft-2"]
    _ok(result)
    assert "validation-interval-regression-accuracy" in result.final_metrics
    booster, plan = table_model.load(result.model_path)
    assert plan.feature_names == ["F0", "F1", "F2", "F3"] and plan.upper.name == datasets.SURVIVAL_UPPER
    raw = datasets.survival_chunk(0, 200, seed=9).to_pandas()
    predicted = table_model.predict_rows(booster, plan, raw)["prediction"].to_numpy()
    seen = raw[datasets.SURVIVAL_UPPER].notna()
    assert np.corrcoef(np.log(predicted[seen]), np.log(raw[datasets.SURVIVAL_LOWER][seen]))[0, 1] > 0.6


def test_survival_cox_trains_on_one_host_and_refuses_several(outcomes) -> None:
    assert len(per_round(_ok(outcomes["cox-1"]), "cox-nloglik")) == int(BASE["num_round"])
    assert_user_failure(outcomes["cox-2"], "objective survival:cox needs every row's risk set on one host")


def test_bad_ranking_rows_fail_in_one_line(outcomes) -> None:
    assert_user_failure(outcomes["null_group"], "6 rows have a NULL group_column 'QUERY'")
    assert_user_failure(outcomes["map_graded"], "rows have a 'RELEVANCE' that objective rank:map cannot use (it "
                        "needs relevance 0 or 1: a list's rows are relevant or not): fix them in a view, or change the "
                        "objective")
