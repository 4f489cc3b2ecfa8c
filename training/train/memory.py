"""How much memory a host may give XGBoost's matrices, and how much its shard would take.

A host whose shard would not fit trains from external memory (XGBoost's
``ExtMemQuantileDMatrix``, cached on the spill volume) instead of in-memory ``QuantileDMatrix``.
Every host must make the same choice: the quantile sketch is all-reduced, and a host building the
other kind of matrix would join a different collective call. :func:`choose_matrices` decides
once for all hosts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from training.collective.cluster import Cluster, allreduce_max, allreduce_sum

log = logging.getLogger(__name__)

MIB = 1024 * 1024

MEMINFO = Path("/proc/meminfo")
"""The machine's memory (``MemTotal``), when no cgroup limit is lower."""
CGROUP_V2_MAX = Path("/sys/fs/cgroup/memory.max")
"""The container's memory limit under cgroup v2 (``max`` when unlimited)."""
CGROUP_V1_LIMIT = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")
"""The container's memory limit under cgroup v1 (a huge number when unlimited)."""

BUDGET_FRACTION = 0.5
"""Share of the process's memory limit the matrices may take by default (``memory_budget_mb=0``).

The estimate (:func:`matrix_bytes`) counts what stays resident while training. The other half
covers what it does not count: building a ``QuantileDMatrix`` holds the sketch and one batch's
float copy besides the growing index, the Python runtime with pyarrow and XGBoost takes a few
hundred MiB, the tracker and MLflow client run in the same process, and the memory-mapped spill
files' pages are charged to the container while they are read. Measured (docs/reliability.md,
"Shards larger than memory"): the process's anonymous memory grew by 1.3x to 1.4x the estimate.
"""

_ROW_BYTES = 8 + 4 + 4 + 4
"""Per row, besides the features: the index's row pointer (8), label (4), weight slot (4) and
the hist updater's row partition (4)."""
_OUTPUT_BYTES = 8 + 4
"""Per row and model output (class): the gradient pair (2 x float32) and the prediction cache."""
_VALUE_BYTES = 4 + 4
"""Per value of a booster=gblinear DMatrix: the float and its column index."""


def memory_limit(meminfo: str, cgroup_v2: str | None = None, cgroup_v1: str | None = None) -> int:
    """Bytes this process may use: the lowest of ``MemTotal`` and any cgroup limit that is set.

    The arguments are the files' texts (None when a file is absent); ``max`` (v2) or a value at
    or above ``MemTotal`` (v1's "unlimited" is about 2^63) means no limit.
    """
    total = _mem_total(meminfo)
    limits = [total]
    for text in (cgroup_v2, cgroup_v1):
        value = (text or "").strip()
        if value.isdigit() and 0 < int(value) < total:
            limits.append(int(value))
    return min(limits)


def _mem_total(meminfo: str) -> int:
    for line in meminfo.splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "MemTotal":
            number, *unit = rest.split()
            return int(number) * (1024 if unit == ["kB"] else 1)
    raise ValueError("no MemTotal line in /proc/meminfo")


def read_memory_limit() -> int:
    """:func:`memory_limit` of this machine (reads /proc/meminfo and the cgroup files)."""
    return memory_limit(MEMINFO.read_text(), *(_read(path) for path in (CGROUP_V2_MAX, CGROUP_V1_LIMIT)))


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def memory_budget(budget_mb: int, limit_bytes: int | None = None) -> int:
    """Bytes the matrices may take: ``budget_mb`` MiB, or when 0 a share of the memory limit."""
    if budget_mb > 0:
        return budget_mb * MIB
    limit = read_memory_limit() if limit_bytes is None else limit_bytes
    return int(limit * BUDGET_FRACTION)


def matrix_bytes(rows: int, features: int, max_bin: int, outputs: int = 1, linear: bool = False) -> int:
    """Estimated resident bytes of a shard's in-memory matrices while training (dense upper bound).

    XGBoost's CPU ``QuantileDMatrix`` keeps every value as a bin index (1 byte up to 256 bins, 2
    up to 65,536) twice, row-wise and column-wise, plus per-row metadata; training adds a gradient
    pair and a cached prediction per row and output. The spill files' size (4 bytes per value) is
    not used: it overstates wide tables about twofold. Missing values make the real index smaller.
    ``linear`` (``booster=gblinear``): a ``DMatrix`` of the values, a float and a column index per
    value, once.
    """
    per_row = features * _VALUE_BYTES if linear else 2 * features * (1 if max_bin <= 256 else 2)
    return rows * (per_row + _ROW_BYTES + outputs * _OUTPUT_BYTES)


@dataclass(frozen=True)
class MatrixChoice:
    """Which matrices the hosts build, decided once for all of them."""

    external: bool
    largest_bytes: int  # the largest host shard's estimate
    budget_bytes: int  # this host's budget
    hosts_over: int  # hosts whose shard is over their budget
    linear: bool = False  # booster=gblinear: DMatrix of values, not quantile bins

    @property
    def kind(self) -> str:
        if self.linear:
            return "DMatrix (external memory)" if self.external else "DMatrix"
        return "ExtMemQuantileDMatrix" if self.external else "QuantileDMatrix"

    def describe(self) -> str:
        """One log line: the kind and why (sizes in MiB)."""
        largest, budget = self.largest_bytes / MIB, self.budget_bytes / MIB
        if self.external:
            return (f"matrices: {self.kind} (external memory, cached on the spill volume): {self.hosts_over} host(s) "
                    f"over the memory budget, largest shard ~{largest:,.0f} MiB in memory vs {budget:,.0f} MiB "
                    "(memory_budget_mb)")
        return (f"matrices: {self.kind} (in memory): largest shard ~{largest:,.0f} MiB in memory, within the budget "
                f"of {budget:,.0f} MiB (memory_budget_mb)")


def choose_matrices(rows: int, features: int, outputs: int, cluster: Cluster, *, max_bin: int, budget_mb: int,
                    linear: bool = False) -> MatrixChoice:
    """External memory on every host as soon as one host's shard is over its budget.

    ``rows`` is this host's shard (training and validation), ``outputs`` the model's outputs per
    row (classes of a ``multi:*`` objective, else 1); the budget is ``budget_mb`` (the hyperparameter
    ``memory_budget_mb``); ``max_bin`` and ``linear`` (gblinear) size the matrices.
    Collective: every host must call it at the same point. The leader logs the choice.
    """
    estimate = matrix_bytes(rows, features, max_bin, outputs, linear)
    budget = memory_budget(budget_mb)
    over = int(estimate > budget)  # this host's matrices would not fit
    hosts_over = int(allreduce_sum(np.array([over], dtype=np.int64), cluster, "matrices: hosts over budget")[0])
    largest = int(allreduce_max(np.array([estimate], dtype=np.int64), cluster, "matrices: largest estimate")[0])
    choice = replace(combine(hosts_over, largest, budget), linear=linear)
    if cluster.leader:
        log.info("%s", choice.describe())
    return choice


def combine(hosts_over: int, largest_bytes: int, budget_bytes: int) -> MatrixChoice:
    """The job's choice from the all-reduced counts: external memory as soon as one host is over."""
    return MatrixChoice(hosts_over > 0, largest_bytes, budget_bytes, hosts_over)
