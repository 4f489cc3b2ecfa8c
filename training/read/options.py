"""What the read takes from the job's hyperparameters: a small, light value (no pyarrow, no connector),
so the hyperparameter table can build it and the readers never see the rest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.objectives.labels import LabelRange


@dataclass(frozen=True)
class ReadOptions:
    """What the read takes from the job's hyperparameters (:meth:`Hyperparameters.read_options
    <training.hyperparameters.Hyperparameters.read_options>`): the readers never see the rest."""

    table: str
    readings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Every valid reading of each identifier (table, target, features, ...; see :mod:`training.read.names`)."""
    objective: str = "reg:squarederror"
    classification: bool = False
    """The label is a class (``binary:*``, ``multi:*``): its values become the label's vocabulary."""
    label_rule: tuple[str, LabelRange] | None = None
    """What the labels must be, and who asks it (:func:`training.objectives.catalog.label_rule`)."""
    snapshot: str = "none"
    read_mode: str = "scan"
    query_tag: str = ""
    max_categories: int = 10_000
    fetch_pages: int = 1
    fetch_threads: int = 4
    split_seed: int = 0
    validation_fraction: float = 0.2
    null_target: str = "fail"
