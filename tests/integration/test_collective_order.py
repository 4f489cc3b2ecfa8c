"""Every host makes the same collective calls in the same order, whatever order XGBoost runs callbacks in.

Cheap: the hosts are threads of this process (XGBoost's communicator is per thread, as its own
tests use it), each joining the real collective through :func:`training.collective.cluster.collective`
with a ledger file, on a few thousand in-memory rows. XGBoost 3.0 keeps its callbacks in a set,
so their order follows object addresses; these tests do not rely on addresses: they force each
host's order (rank 0 one way, rank 1 the other) by wrapping XGBoost's ``CallbackContainer``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import xgboost as xgb

from launch.local.hosts import _collect, run_thread_hosts
from tests.helpers import numeric_plan
from training.collective.cluster import Cluster, agree, allreduce_max
from training.collective.ledger import compare_ledger_files, ledger_path, read_ledger
from training.errors import DataError
from training.evaluation import contributions
from training.hyperparameters import parse_hyperparameters
from training.job import JobSpec
from training.read.columns import LABEL, ColumnPlan, ColumnSpec
from training.tracking.recorder import NO_RECORDER
from training.train import boosting
from training.train.checkpoints import StopFlag, list_checkpoints, resume_point
from training.train.dataset import build_matrices
from training.train.evaluate import evaluate as evaluate_validation
from training.train.evaluate import shap_importance

HOSTS = ("127.0.0.1", "127.0.0.2")
FEATURES = ["x0", "x1", "x2"]


def run_hosts(work: Callable[[Cluster], Any], ledger_dir: Path, hosts: tuple[str, ...] = HOSTS) -> list[Any]:
    """``work(cluster)`` on every host at once, each a thread in the job's collective; results by rank."""
    return run_thread_hosts(work, hosts, ledger_dir, timeout=20, wait=120)


@pytest.fixture
def opposite_callback_orders(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """XGBoost runs a host's callbacks by class name, forwards on rank 0 and backwards on rank 1."""
    original = xgb.callback.CallbackContainer.__init__

    def ordered(self: Any, callbacks: Any, *args: Any, **kwargs: Any) -> None:
        original(self, callbacks, *args, **kwargs)
        backwards = xgb.collective.get_rank() == 1
        self.callbacks = sorted(callbacks, key=lambda c: type(c).__name__, reverse=backwards)

    monkeypatch.setattr(xgb.callback.CallbackContainer, "__init__", ordered)
    yield


def _rows(rank: int, rows: int = 2_000) -> tuple[np.ndarray, np.ndarray]:
    """This host's share of a noisy linear table (the noise makes early stopping fire within a few rounds)."""
    rng = np.random.default_rng(rank)
    x = rng.normal(size=(rows, len(FEATURES))).astype(np.float32)
    return x, (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=1.0, size=rows)).astype(np.float32)


class Talker(xgb.callback.TrainingCallback):
    """A callback that all-reduces each round, as two of ours once did."""

    def __init__(self, cluster: Cluster, site: str) -> None:
        super().__init__()
        self.cluster, self.site = cluster, site

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        allreduce_max(np.zeros(1, dtype=np.int32), self.cluster, self.site)
        return False


class FirstTalker(Talker):
    pass


class SecondTalker(Talker):
    pass


def test_the_ledger_comparison_names_two_callbacks_run_in_different_orders(tmp_path: Path,
                                                                             opposite_callback_orders: None) -> None:
    def train(cluster: Cluster) -> int:
        x, y = _rows(cluster.rank, 200)
        talkers = [FirstTalker(cluster, "first talker"), SecondTalker(cluster, "second talker")]
        return xgb.train({"max_depth": 2}, xgb.DMatrix(x, y), 3, callbacks=talkers).num_boosted_rounds()

    assert run_hosts(train, tmp_path) == [3, 3]  # same shape and dtype: nothing failed
    found = compare_ledger_files(tmp_path, HOSTS, complete=True)
    assert found == ("the hosts' collective calls differ at call #1: 127.0.0.1 made 'first talker allreduce:max "
                     "int32 (1,)'; 127.0.0.2 made 'second talker allreduce:max int32 (1,)'")


def _spec(tmp_path: Path, cluster: Cluster, **hyperparameters: object) -> JobSpec:
    hps = parse_hyperparameters({"table": "T", "target": "y", "num_round": "200", "max_depth": "3", "eta": "0.6",
                                 "early_stopping_rounds": "3", **{k: str(v) for k, v in hyperparameters.items()}})
    host_dir = tmp_path / cluster.current_host
    return JobSpec(hps, cluster, host_dir / "model", host_dir / "spill", checkpoint_dir=host_dir / "checkpoints")


class SignalAt(xgb.callback.TrainingCallback):
    """The run recorder's place: on one host, SIGTERM's flag is set after ``round`` (and nothing else)."""

    def __init__(self, stop: StopFlag, round_: int | None) -> None:
        super().__init__()
        self.stop, self.round = stop, round_

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        if epoch + 1 == self.round:
            self.stop.set()
        return False


class Recorder:
    """The NO_RECORDER protocol with a callback that may raise this host's stop flag."""

    def __init__(self, stop: StopFlag, round_: int | None) -> None:
        self.stop, self.round = stop, round_

    def callback(self, offset: int = 0) -> xgb.callback.TrainingCallback:
        return SignalAt(self.stop, self.round)


def _train_on(tmp_path: Path, signal_host: str | None = None, signal_round: int = 4,
              **hyperparameters: object) -> Callable[[Cluster], tuple[int, tuple[str, ...], int]]:
    columns = numeric_plan(FEATURES, label="y")

    def train(cluster: Cluster) -> tuple[int, tuple[str, ...], int]:
        x, y = _rows(cluster.rank)
        dtrain = xgb.QuantileDMatrix(x[:1600], y[:1600], feature_names=FEATURES)
        dvalid = xgb.QuantileDMatrix(x[1600:], y[1600:], ref=dtrain, feature_names=FEATURES)
        stop = StopFlag()
        recorder = Recorder(stop, signal_round if cluster.current_host == signal_host else None)
        spec = _spec(tmp_path, cluster, **hyperparameters)
        trained = boosting.train(spec.hyperparameters, columns, dtrain, dvalid, cluster, stop, spec.checkpoint_dir,
                                 (recorder if signal_host else NO_RECORDER).callback)
        return trained.rounds, trained.signalled, trained.booster.num_boosted_rounds()

    return train


def test_early_stopping_stops_every_host_after_the_same_round_whatever_order_xgboost_runs_callbacks(
        tmp_path: Path, opposite_callback_orders: None) -> None:
    """Failed every time before the round had one owner: the stop flag of one host met the other's verdict."""
    results = run_hosts(_train_on(tmp_path / "hosts"), tmp_path)
    (rounds, signalled, boosted), other = results
    assert other == results[0]
    assert rounds < 200 and rounds == boosted and signalled == ()  # stopped early, not by a signal
    assert compare_ledger_files(tmp_path, HOSTS, complete=True) is None
    calls = read_ledger(ledger_path(tmp_path, HOSTS[0]))
    assert calls.count("xgboost:_allreduce_metric\tallreduce:sum\tfloat64\t(1,)") == 2 * rounds  # train, validation
    assert [c for c in calls if "stop verdict" in c][-1] == f"round {rounds}: stop verdict\tallreduce:max\tint32\t(3,)"


@pytest.mark.parametrize("signal_host", HOSTS)
def test_a_signal_on_one_host_stops_every_host_after_the_same_round_and_names_that_host(
        tmp_path: Path, opposite_callback_orders: None, signal_host: str) -> None:
    train = _train_on(tmp_path / "hosts", signal_host, signal_round=4, early_stopping_rounds=0, num_round=50,
                      checkpoint_interval=1000)
    assert run_hosts(train, tmp_path) == [(4, (signal_host,), 4)] * 2
    assert compare_ledger_files(tmp_path, HOSTS, complete=True) is None
    # the leader saved the model at the stop round, whichever host got the signal
    assert [rounds for rounds, _ in list_checkpoints(tmp_path / "hosts" / HOSTS[0] / "checkpoints")] == [4]


@pytest.mark.parametrize(("objective", "rows"), [
    ("reg:squarederror", (70_000, 1_000)),  # two validation batches of 65,536 rows on host 1, one on host 2
    ("reg:squarederror", (1_000, 0)),  # host 2 has no validation rows
    ("binary:logistic", (1_000, 0)),
    ("multi:softprob", (1_000, 0)),
])
def test_the_evaluation_makes_the_same_calls_on_hosts_with_different_validation_rows(
        tmp_path: Path, objective: str, rows: tuple[int, int]) -> None:
    """Scoring a matrix per batch made XGBoost's hidden column-count all-reduce once more on the host with
    more batches; a host with no rows all-reduced its summary as int64 against the others' float64."""
    classes = 3 if objective.startswith("multi") else 2 if objective.startswith("binary") else 0
    columns = numeric_plan(FEATURES, label="y")
    names = ("cat", "dog", "emu")[:classes]
    if classes:  # a text label, as the job codes it
        columns = ColumnPlan((*columns.features, ColumnSpec("y", "TEXT", "class", LABEL)), {"y": names})
    hps = parse_hyperparameters({"table": "T", "target": "y", "objective": objective,
                                 **({"num_class": str(classes)} if classes == 3 else {})})

    def evaluate(cluster: Cluster) -> tuple[dict[str, float], float, int]:
        x, y = _rows(cluster.rank, rows[cluster.rank])
        if classes:
            y = np.clip(np.floor(y + 1), 0, classes - 1).astype(np.float32)
        label = pa.array(np.array(names, dtype=object)[y.astype(int)]) if classes else pa.array(y)
        path = tmp_path / f"{cluster.current_host}.arrow"
        batch = columns.to_spill([pa.array(x[:, i]) for i in range(len(FEATURES))] + [label])
        with pa.ipc.new_file(str(path), batch.schema) as out:
            out.write_batch(batch)
        dtrain, dvalid = build_matrices(path, path, columns, 256)
        params = {**hps.xgboost_params(), **({"num_class": classes} if classes == 3 else {})}
        booster = xgb.train(params, dtrain, 3)
        report = evaluate_validation(booster, dvalid, path, columns, hps["objective"], cluster)
        assert report is not None
        wrong = float(np.sum((booster.inplace_predict(x) - y) ** 2)) if not classes and len(y) else 0.0
        return report.scalars, wrong, len(y)

    (scalars, squared_1, rows_1), (other, squared_2, rows_2) = run_hosts(evaluate, tmp_path / "ledgers")
    assert other == scalars  # every host holds the job's report
    if not classes:
        assert scalars["mse"] == pytest.approx((squared_1 + squared_2) / (rows_1 + rows_2), rel=1e-5)
    assert compare_ledger_files(tmp_path / "ledgers", HOSTS, complete=True) is None


@pytest.mark.parametrize(("objective", "rows", "shap_rows", "slices"), [
    ("reg:squarederror", (2_500, 1_000), 10_000, 3),  # 1,000-row slices: 3 on host 1, 1 (and 2 empty) on host 2
    ("reg:squarederror", (1_000, 0), 10_000, 1),  # host 2 has no validation rows
    ("reg:squarederror", (1_000, 0), 300, 1),  # capped: host 1 uses 150 rows spread over its 1,000, host 2 none
    ("binary:logistic", (0, 1_000), 10_000, 1),
    ("multi:softprob", (1_000, 0), 10_000, 4),  # 3 classes: 333-row slices
    ("gblinear", (1_000, 200), 10_000, 1),
    ("reg:squarederror", (0, 0), 10_000, 0),  # no validation rows anywhere: every host skips after one call
    ("reg:squarederror", (1_000, 200), 0, 0),  # shap_rows=0: no call at all
])
def test_the_shap_importance_makes_the_same_calls_on_hosts_with_different_validation_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, objective: str, rows: tuple[int, int], shap_rows: int,
        slices: int) -> None:
    """Every host builds as many matrices (each all-reduces its column count inside XGBoost) whatever its rows,
    and the importance equals the mean over the rows of every host, scored on one."""
    monkeypatch.setattr(contributions, "SLICE_BYTES", 1_000 * 4 * (len(FEATURES) + 1))
    classes = 3 if objective.startswith("multi") else 2 if objective.startswith("binary") else 0
    columns = numeric_plan(FEATURES, label="y")
    booster_params = {"booster": "gblinear"} if objective == "gblinear" else {
        "objective": objective, "max_depth": 3, **({"num_class": classes} if classes == 3 else {})}
    outputs = 3 if classes == 3 else 1

    def labels(y: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(y + 1), 0, classes - 1).astype(np.float32) if classes else y

    def shap(cluster: Cluster) -> tuple[Any, np.ndarray]:
        x, y = _rows(cluster.rank, rows[cluster.rank])
        path = tmp_path / f"{cluster.current_host}.arrow"
        batch = columns.to_spill([pa.array(x[:, i]) for i in range(len(FEATURES))] + [pa.array(labels(y))])
        with pa.ipc.new_file(str(path), batch.schema) as out:
            out.write_batch(batch)
        train_x, train_y = _rows(10, 500)  # the same rows on every host: the same model
        booster = xgb.train(booster_params, xgb.DMatrix(train_x, labels(train_y)), 5)
        used = min(len(x), contributions.rows_per_host(shap_rows, 2))
        found = shap_importance(booster, path, columns, outputs, shap_rows, cluster)
        scored = x[contributions.sampled(0, len(x), len(x), used)]
        return found, booster.predict(xgb.DMatrix(scored), pred_contribs=True).reshape(-1, outputs, 4)

    (found, mine), (other, theirs) = run_hosts(shap, tmp_path / "ledgers")
    assert found == other  # every host holds the job's importance
    assert compare_ledger_files(tmp_path / "ledgers", HOSTS, complete=True) is None
    calls = read_ledger(ledger_path(tmp_path / "ledgers", HOSTS[0]))
    assert [c.split("\t")[0] for c in calls] == (["shap: slices"] if shap_rows else []) + (
        ["shap: slice matrix"] * slices + ["shap: sums"] if slices else [])
    if not slices:
        assert found is None
        return
    both = np.concatenate([mine, theirs]).astype(np.float64)
    assert found.rows == len(both) <= shap_rows and found.validation_rows == sum(rows)
    expected = np.abs(both[:, :, :-1]).mean(axis=0)
    np.testing.assert_allclose(list(found.mean_abs_shap.values()), expected.sum(axis=0), rtol=1e-5)
    assert list(found.mean_abs_shap) == FEATURES and min(found.mean_abs_shap.values()) >= 0
    assert len(found.per_class) == (3 if outputs == 3 else 0)


def _outcomes(work: Callable[[Cluster], Any], ledger_dir: Path) -> list[str]:
    """Each host's outcome of ``work``: ``ok`` or its error, as ``Kind: message``."""

    def host(cluster: Cluster) -> str:
        try:
            work(cluster)
        except Exception as err:
            return f"{type(err).__name__}: {err}"
        return "ok"

    return run_hosts(host, ledger_dir)


def test_a_host_that_fails_alone_fails_every_host_at_once_with_its_reason(tmp_path: Path) -> None:
    """A host whose own read fails (a download, its disk) no longer leaves the others waiting in their
    next collective call until the timeout, then blaming a lost contact."""

    def read(cluster: Cluster) -> None:
        def step() -> int:
            if cluster.rank == 1:
                raise DataError("could not download result batch 2 of 5: restart the job")
            return cluster.rank

        agree(step, cluster, "read: share fetched")
        allreduce_max(np.zeros(1), cluster, "read: totals")  # never reached: no host is left waiting in it

    started = time.monotonic()
    assert _outcomes(read, tmp_path) == [
        "DataError: could not download result batch 2 of 5: restart the job (on host 127.0.0.2)",
        "DataError: could not download result batch 2 of 5: restart the job"]
    assert time.monotonic() - started < 15  # well inside the 20 s collective timeout
    assert compare_ledger_files(tmp_path, HOSTS, complete=True) is None


def test_a_bug_on_one_host_points_the_others_to_its_log_and_keeps_its_traceback_there(tmp_path: Path) -> None:
    def read(cluster: Cluster) -> None:
        agree(lambda: 1 / cluster.rank, cluster, "read: share fetched")  # rank 0 divides by zero

    assert _outcomes(read, tmp_path) == [
        "ZeroDivisionError: division by zero",
        "ClusterError: host 127.0.0.1 failed with an internal error (ZeroDivisionError): see its log for the traceback"]


def test_the_leaders_failure_to_read_its_checkpoint_fails_every_host_with_its_reason(tmp_path: Path) -> None:
    """Only the leader reads the checkpoint (the others may have none): its error reaches them too."""
    leader_checkpoints = tmp_path / "checkpoints"
    (leader_checkpoints / "xgboost-checkpoint.12").mkdir(parents=True)  # not a file: it cannot be read

    def resume(cluster: Cluster) -> None:
        resume_point(leader_checkpoints if cluster.leader else None, cluster)

    fix = "fix it or remove it, or restart the job with an empty checkpoint location to train afresh"
    assert _outcomes(resume, tmp_path / "ledgers") == [
        f"ConfigError: the checkpoint xgboost-checkpoint.12 in {leader_checkpoints} cannot be read (Is a directory): "
        f"{fix}",
        f"ConfigError: the checkpoint xgboost-checkpoint.12 in {leader_checkpoints} cannot be read (Is a directory): "
        f"{fix} (on host 127.0.0.1)"]


def test_a_signal_in_the_round_early_stopping_ends_training_is_no_interruption(
        tmp_path: Path, opposite_callback_orders: None) -> None:
    """Training is complete: the job finishes (a restart would have trained on past the best round)."""
    (rounds, _, _), _ = run_hosts(_train_on(tmp_path / "first"), tmp_path / "ledgers")
    stopped = run_hosts(_train_on(tmp_path / "second", HOSTS[1], signal_round=rounds), tmp_path / "ledgers")
    assert stopped == [(rounds, (), rounds)] * 2


def test_a_checkpoint_the_leader_cannot_write_is_a_warning_and_every_host_trains_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Before, the leader left the collective alone and the other hosts waited for it until the timeout."""
    (tmp_path / "hosts" / HOSTS[0]).mkdir(parents=True)
    (tmp_path / "hosts" / HOSTS[0] / "checkpoints").write_text("a file where the checkpoint folder should be")
    train = _train_on(tmp_path / "hosts", early_stopping_rounds=0, num_round=6, checkpoint_interval=2)
    with caplog.at_level(logging.WARNING, logger="training.train.rounds"):
        assert run_hosts(train, tmp_path) == [(6, (), 6)] * 2
    assert "could not save the checkpoint after round 2 (FileExistsError" in caplog.text


VERDICT = "round 1: stop verdict\tallreduce:max\tint32\t(3,)"
METRIC = "xgboost:_allreduce_metric\tallreduce:sum\tfloat64\t(1,)"


def test_a_local_job_whose_hosts_called_differently_fails_with_the_first_difference(tmp_path: Path) -> None:
    """Even when every host exited 0: the model may be wrong (same-shape calls pair silently)."""
    hosts = [tmp_path / "jobs" / "j" / h for h in ("127.0.0.1", "127.0.0.2")]
    ledgers = tmp_path / "jobs" / "j" / "ledgers"
    ledgers.mkdir(parents=True)
    (ledgers / "127.0.0.1.ledger").write_text(f"1\t{METRIC}\n2\t{VERDICT}\n")
    (ledgers / "127.0.0.2.ledger").write_text(f"1\t{VERDICT}\n2\t{METRIC}\n")
    result = _collect("j", hosts, [0, 0])
    assert result.exit_code == 1
    assert result.failure is not None and result.failure.startswith("the hosts' collective calls differ at call #1: ")
    assert result.ledger_mismatch is not None and "127.0.0.2 made 'round 1: stop verdict" in result.ledger_mismatch
    (ledgers / "127.0.0.2.ledger").write_text(f"1\t{METRIC}\n2\t{VERDICT}\n")
    assert _collect("j", hosts, [0, 0]).exit_code == 0
