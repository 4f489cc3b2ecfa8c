"""Local tuning and ``python -m launch train --local`` against real local runs (the launcher's metric regexes
read a real run's log in test_entrypoint, whose job reports two metrics)."""

from __future__ import annotations

import re

import pytest

from launch.local.tuning import tune_local
from tests.helpers import synth_hps
from training import contract
from training.hyperparameters import SPECS

pytestmark = pytest.mark.slow


def test_tune_local_runs_trials_over_the_table_space(run_job) -> None:
    space = {name: SPECS[name].tuning for name in ("eta", "max_depth", "num_round")}
    fixed = {k: v for k, v in synth_hps(num_round=5).items() if k not in ("eta", "max_depth")}
    trials = tune_local(space, fixed, trials=2, hosts=1, run_job=run_job)
    assert len(trials) == 2
    assert all(t.value is not None and t.value > 0 for t in trials), trials
    assert all(t.hyperparameters["num_round"] == "5" for t in trials)  # pinned, so not searched
    assert trials[0].value <= trials[1].value  # best first
    assert trials[0].hyperparameters["eta"] != trials[1].hyperparameters["eta"]


def test_the_local_command_runs_the_demo_with_set_hyperparameters(tmp_path, monkeypatch, capsys) -> None:
    """``python -m launch train --local``: the stand-ins, a seeded table, N hosts, the report a user reads."""
    from launch.cli import main, parser
    from launch.local.demo import DEMO_TABLES

    monkeypatch.setenv(contract.TRACKING_URI_ENV, "")  # tracking off: this test is about the command
    argv = ["train", "--local", "--hosts", "2", "--demo-data", "synthetic", "--rows", "3000",
            "--workdir", str(tmp_path), "--set", "hyperparameters.num_round=4", "--set", "hyperparameters.eta=0.5"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"local job local-\S+ succeeded in [\d.]+ s", out)
    assert re.search(r"final metrics: train-rmse [\d.]+, validation-rmse [\d.]+ after 4 rounds", out), out
    (leader,) = [p for p in (tmp_path / "jobs").glob("*/127.0.0.1/input/config/hyperparameters.json")]
    assert '"eta": "0.5"' in leader.read_text()
    (train,) = [a for a in parser()._subparsers._group_actions[0].choices["train"]._actions  # noqa: SLF001
                if "--demo-data" in a.option_strings]
    assert tuple(train.choices) == tuple(DEMO_TABLES)  # every demo data set is offered, and only those
