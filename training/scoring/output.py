"""The target table's columns, stable and documented (docs/scoring.md): keys, prediction, probabilities, lineage.

- the key columns, as the source table names and types them;
- ``PREDICTION``: the value (regression, ranking, survival), or the class as the table had it
  (its label's type: text stays text, numbers stay numbers, booleans stay booleans);
- ``PROBABILITY`` (``binary:*``: of the second class) or ``PROBABILITY_<CLASS>`` per class (``multi:softprob``);
- with ``explain=K``: ``SHAP_1_FEATURE``, ``SHAP_1_VALUE``, ..., ``SHAP_<K>_FEATURE``, ``SHAP_<K>_VALUE``, the
  row's K largest SHAP contributions (:mod:`training.model.explain`);
- ``MODEL_NAME``, ``MODEL_VERSION``, ``RUN_ID``: where the model came from; ``SCORED_AT``: when (UTC).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from training.errors import DataError
from training.model.booster import PREDICTION, PROBABILITY
from training.model.explain import explanation_columns
from training.objectives import catalog
from training.objectives.catalog import entry
from training.read.columns import ColumnPlan
from training.read.snowflake import quote_column

LINEAGE = ("MODEL_NAME", "MODEL_VERSION", "RUN_ID")
SCORED_AT = "SCORED_AT"
_SQL_TYPES = {"TEXT": "VARCHAR", "BOOLEAN": "BOOLEAN", "REAL": "FLOAT", "FIXED": "NUMBER(38, 0)"}


@dataclass(frozen=True)
class OutputColumns:
    """The target's columns after the keys: each ``(name, SQL type)``, and which ``predict_rows`` column fills it."""

    columns: tuple[tuple[str, str], ...]
    sources: tuple[str, ...]
    """For each prediction column, the column of :func:`training.model.booster.predict_rows` that fills it."""

    def frame(self, keys: Any, predictions: Any, lineage: Sequence[str], scored_at: datetime) -> Any:
        """The rows to write: the key columns, then the predictions and lineage under the target's names."""
        import pandas as pd

        out = pd.DataFrame({name: keys[name] for name in keys.columns}) if keys is not None else pd.DataFrame()
        out = out.reset_index(drop=True)
        for (name, _), source in zip(self.columns, self.sources, strict=False):
            out[name] = predictions[source].to_numpy()
        for name, value in zip(LINEAGE, lineage, strict=True):
            out[name] = value
        out[SCORED_AT] = pd.Timestamp(scored_at).tz_localize(None) if scored_at.tzinfo else pd.Timestamp(scored_at)
        return out

    def select_nulls(self) -> str:
        """The prediction and lineage columns as typed NULLs, for ``CREATE TABLE ... AS SELECT``."""
        typed = [*self.columns, *((name, "VARCHAR") for name in LINEAGE), (SCORED_AT, "TIMESTAMP_NTZ")]
        return ", ".join(f"CAST(NULL AS {kind}) AS {quote_column(name)}" for name, kind in typed)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns] + [*LINEAGE, SCORED_AT]


def output_columns(plan: ColumnPlan, objective: str, keys: Sequence[str], explain: int = 0) -> OutputColumns:
    """The prediction columns for this model (its plan names its classes and their type; its objective
    whether it reports probabilities), then ``explain`` contributions' feature and value columns."""
    classes = plan.classes
    label = plan.label
    output = entry(objective).output
    if classes is None:
        columns, sources = [(PREDICTION.upper(), "FLOAT")], [PREDICTION]
    else:
        kind = _SQL_TYPES.get(label.snowflake_type.upper(), "VARCHAR")
        if kind.startswith("NUMBER") and not all(float(c).is_integer() for c in classes):
            kind = "FLOAT"
        columns, sources = [(PREDICTION.upper(), kind)], [PREDICTION]
        if output == catalog.PROBABILITY:
            columns.append((PROBABILITY.upper(), "FLOAT"))
            sources.append(PROBABILITY)
        elif output == catalog.PROBABILITIES:
            for value in classes:
                columns.append((f"{PROBABILITY.upper()}_{_name_part(value)}", "FLOAT"))
                sources.append(str(value))
    for source in explanation_columns(explain):
        columns.append((source.upper(), "VARCHAR" if source.endswith("_feature") else "FLOAT"))
        sources.append(source)
    taken = [name for name, _ in columns] + [*LINEAGE, SCORED_AT]
    clash = sorted({name for name in taken if taken.count(name) > 1} | (set(taken) & set(keys)))
    if clash:
        raise DataError(f"the target table would have two columns named {clash[0]!r} (a key column or a class "
                        "name): rename that key column in a view of the source table")
    return OutputColumns(tuple(columns), tuple(sources))


def _name_part(value: Any) -> str:
    """A class as part of an unquoted column name: upper case, anything but letters and digits as ``_``."""
    return re.sub(r"[^A-Z0-9]", "_", str(value).upper()) or "_"
