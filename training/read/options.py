"""What the read takes from the job's hyperparameters: a small, light value (no pyarrow, no connector),
so the hyperparameter table can build it and the readers never see the rest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.objectives.labels import LabelRange


@dataclass(frozen=True)
class ReadOptions:
    """What the read takes from the job's hyperparameters (:meth:`Hyperparameters.read_options
    <training.hyperparameters.Hyperparameters.read_options>`): the readers never see the rest."""

    table: str
    readings: Mapping[str, tuple[str, ...]]
    """Every valid reading of each identifier (table, target, features, ...; see :mod:`training.read.names`)."""
    objective: str
    classification: bool
    """The label is a class (``binary:*``, ``multi:*``): its values become the label's vocabulary."""
    label_rule: tuple[str, LabelRange] | None
    """What the labels must be, and who asks it (:func:`training.objectives.catalog.label_rule`)."""
    snapshot: str
    read_mode: str
    query_tag: str
    max_categories: int
    fetch_pages: int
    fetch_threads: int
    split_seed: int
    validation_fraction: float
