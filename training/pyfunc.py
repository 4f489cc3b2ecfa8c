"""The MLflow model: scores rows as the table has them (text, booleans, dates, timestamps, NULLs).

It wraps the same model file the job writes to ``model/`` and codes raw rows with the column
plan stored inside it (:mod:`training.model`), so a row scored through MLflow gets exactly the
container's coding. Its signature lists the table's own column names and types.

This module imports ``mlflow`` at the top: :mod:`training.tracking` imports it lazily, only
when a model is logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pyarrow as pa
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from training.columns import ColumnPlan
from training.model import load, predict_rows

ARTIFACT = "xgboost_model"
"""Name of the model file among the MLflow model's artifacts."""
PACKAGE_DIR = Path(__file__).resolve().parent
"""The ``training`` package, shipped with the MLflow model as code (it holds the coding)."""
CODE_FILE = PACKAGE_DIR / "mlflow_model.py"
"""The model's code file (MLflow's models from code: no pickled Python object in the model)."""


class TableModel(mlflow.pyfunc.PythonModel):
    """Predicts from raw rows: loads the XGBoost model file and its column plan."""

    def load_context(self, context: Any) -> None:
        self._booster, self._plan = load(context.artifacts[ARTIFACT])

    # No type hints on purpose: MLflow would read them as a second, conflicting input schema.
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        """A DataFrame of raw rows -> predictions (see :func:`training.model.predict_rows`)."""
        return predict_rows(self._booster, self._plan, model_input)


def signature(plan: ColumnPlan, example: Any, outputs: Any) -> ModelSignature:
    """Inputs: each feature under its table name and type (NULL allowed). Outputs: as predicted."""
    from mlflow.models import infer_signature

    inputs = Schema([ColSpec(kind, name, required=False) for name, kind in plan.signature_columns()])
    return ModelSignature(inputs=inputs, outputs=infer_signature(example, outputs).outputs)


def example_frame(plan: ColumnPlan, rows: pa.Table) -> Any:
    """Raw rows (as the connector returned them) in the types the signature names."""
    import pandas as pd

    frame = {}
    for name, kind in plan.signature_columns():
        column = rows.column(name)
        if kind == "double":
            frame[name] = column.cast(pa.float64()).to_pandas()
        elif kind == "datetime":
            frame[name] = pd.to_datetime(column.to_pandas(), utc=pa.types.is_timestamp(column.type)
                                         and column.type.tz is not None).dt.tz_localize(None)
        elif kind == "string":
            frame[name] = pd.Series([None if v is None else str(v) for v in column.to_pylist()], dtype=object)
        else:
            frame[name] = pd.Series(column.to_pylist(), dtype=object)
    return pd.DataFrame(frame)
