"""The memory budget and the choice of matrices: in memory while the shard fits, external memory on
every host as soon as one host's shard does not."""

from __future__ import annotations

import logging

import pytest

from training.collective.cluster import Cluster
from training.errors import HyperparameterError
from training.hyperparameters import parse_hyperparameters
from training.train import memory
from training.train.memory import MIB, choose_matrices, combine, matrix_bytes, memory_budget, memory_limit

MEMINFO = "MemTotal:       16384000 kB\nMemFree:         8000000 kB\nMemAvailable:   12000000 kB\n"
TOTAL = 16_384_000 * 1024
ONE_HOST = Cluster(("algo-1",), "algo-1")


def _hps(**values: object):
    return parse_hyperparameters({"table": "T", "target": "Y", **{k: str(v) for k, v in values.items()}})


@pytest.mark.parametrize(("v2", "v1", "expected"), [
    (None, None, TOTAL),  # no cgroup files: the machine's memory
    ("max\n", None, TOTAL),  # cgroup v2 without a limit
    ("4294967296\n", None, 4 * 1024 * MIB),  # cgroup v2 limit below RAM
    (None, "9223372036854771712\n", TOTAL),  # cgroup v1 "unlimited"
    (None, "2147483648\n", 2 * 1024 * MIB),  # cgroup v1 limit below RAM
    ("99999999999999\n", None, TOTAL),  # a limit above RAM cannot be used
    ("max", "1073741824", 1024 * MIB),  # the lowest limit wins
])
def test_memory_limit_is_the_lowest_limit_that_is_set(v2, v1, expected):
    assert memory_limit(MEMINFO, v2, v1) == expected


def test_memory_limit_needs_memtotal():
    with pytest.raises(ValueError, match="MemTotal"):
        memory_limit("MemFree: 1 kB\n")


def test_budget_is_the_hyperparameter_or_half_the_limit():
    assert memory_budget(300, limit_bytes=TOTAL) == 300 * MIB
    assert memory_budget(0, limit_bytes=8 * 1024 * MIB) == 4 * 1024 * MIB
    assert memory_budget(0) == int(memory.read_memory_limit() * memory.BUDGET_FRACTION)  # this machine


def test_estimate_grows_with_rows_features_bins_and_classes():
    base = matrix_bytes(1_000_000, 8, 256)
    assert matrix_bytes(2_000_000, 8, 256) == 2 * base
    assert matrix_bytes(1_000_000, 16, 256) > base
    assert matrix_bytes(1_000_000, 8, 1024) > base  # 2-byte bin indices
    assert matrix_bytes(1_000_000, 8, 256, outputs=5) > base  # a gradient per class
    assert 40 * 1_000_000 < base < 60 * 1_000_000  # ~48 bytes a row for 8 features


def test_a_shard_within_the_budget_stays_in_memory(caplog):
    rows = 10_000
    with caplog.at_level(logging.INFO, logger="training.train.memory"):
        choice = choose_matrices(rows, 8, 1, ONE_HOST, max_bin=256, budget_mb=100)
    assert not choice.external and choice.kind == "QuantileDMatrix"
    assert choice.budget_bytes == 100 * MIB and choice.largest_bytes == matrix_bytes(rows, 8, 256)
    assert "matrices: QuantileDMatrix (in memory)" in caplog.text and "budget of 100 MiB" in caplog.text


def test_budget_1_forces_external_memory(caplog):
    with caplog.at_level(logging.INFO, logger="training.train.memory"):
        choice = choose_matrices(100_000, 8, 1, ONE_HOST, max_bin=256, budget_mb=1)
    assert choice.external and choice.kind == "ExtMemQuantileDMatrix" and choice.hosts_over == 1
    assert "matrices: ExtMemQuantileDMatrix (external memory" in caplog.text
    assert "~5 MiB in memory vs 1 MiB" in caplog.text


def test_one_host_over_budget_turns_every_host_to_external_memory():
    """The choice from the all-reduced counts (a 2-host job forced over budget runs in
    test_external_memory.py through XGBoost's real collective)."""
    choice = combine(hosts_over=1, largest_bytes=900 * MIB, budget_bytes=500 * MIB)
    assert choice.external and choice.hosts_over == 1 and choice.kind == "ExtMemQuantileDMatrix"
    assert "1 host(s) over the memory budget, largest shard ~900 MiB in memory vs 500 MiB" in choice.describe()


def test_no_host_over_budget_keeps_every_host_in_memory():
    choice = combine(hosts_over=0, largest_bytes=1 * MIB, budget_bytes=500 * MIB)
    assert not choice.external and choice.kind == "QuantileDMatrix"


def test_memory_budget_mb_is_validated():
    assert _hps()["memory_budget_mb"] == 0
    with pytest.raises(HyperparameterError, match="'memory_budget_mb' must be an integer in"):
        _hps(memory_budget_mb=-1)
