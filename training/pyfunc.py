"""The MLflow model: scores rows as the table has them (text, booleans, dates, timestamps, NULLs).

It wraps the same model file the job writes to ``model/`` and codes raw rows with the column
plan stored inside it (:mod:`training.model`), so a row scored through MLflow gets exactly the
container's coding. Its signature lists the table's own column names and types.

This module imports ``mlflow`` at the top: :mod:`training.tracking` imports it lazily, only
when a model is logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import pyarrow as pa
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from training.columns import ColumnPlan
from training.contract import MLFLOW_ARTIFACT, MODEL_FILE
from training.model import embed_plan, load, predict_rows

if TYPE_CHECKING:
    import xgboost as xgb

PACKAGE_DIR = Path(__file__).resolve().parent
"""The ``training`` package, shipped with the MLflow model as code (it holds the coding)."""
CODE_FILE = PACKAGE_DIR / "mlflow_model.py"
"""The model's code file (MLflow's models from code: no pickled Python object in the model)."""


class TableModel(mlflow.pyfunc.PythonModel):
    """Predicts from raw rows: loads the XGBoost model file and its column plan."""

    def load_context(self, context: Any) -> None:
        self._booster, self._plan = load(context.artifacts[MLFLOW_ARTIFACT])

    # No type hints on purpose: MLflow would read them as a second, conflicting input schema.
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        """A DataFrame of raw rows -> predictions (see :func:`training.model.predict_rows`)."""
        return predict_rows(self._booster, self._plan, model_input)


def signature(plan: ColumnPlan, example: Any, outputs: Any) -> ModelSignature:
    """Inputs: each feature under its table name and type (NULL allowed). Outputs: as predicted."""
    from mlflow.models import infer_signature

    inputs = Schema([ColSpec(kind, name, required=False) for name, kind in plan.signature_columns()])
    return ModelSignature(inputs=inputs, outputs=infer_signature(example, outputs).outputs)


def log_model(run_id: str, experiment_id: str, name: str, booster: xgb.Booster, plan: ColumnPlan,
              example: pa.Table | None) -> str:
    """Log ``booster`` as this module's model named ``name`` in run ``run_id``; return its ``models:/`` URI.

    The model file is the job's own (UBJ, the column plan embedded); ``example``'s raw rows become
    the input example and, scored, the signature's outputs. Sets the process's active experiment:
    MLflow files a logged model under the active experiment, not the run's.
    """
    import tempfile
    import warnings

    from mlflow.models import Model

    from training.mlflow_client import package_version

    embed_plan(booster, plan)
    mlflow.set_experiment(experiment_id=experiment_id)
    frame = example_frame(plan, example) if example is not None and example.num_rows else None
    outputs = predict_rows(booster, plan, frame) if frame is not None else None
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # The signature is given; MLflow's advice to add type hints to predict() does not apply.
        warnings.filterwarnings("ignore", message=".*type hints to the `predict` method")
        path = Path(tmp) / MODEL_FILE
        path.write_bytes(booster.save_raw("ubj"))
        # Model.log, as mlflow.pyfunc.log_model does, but for this run (not an active run).
        info = Model.log(
            artifact_path=None, name=name, flavor=mlflow.pyfunc, run_id=run_id,
            python_model=str(CODE_FILE), artifacts={MLFLOW_ARTIFACT: str(path)}, code_paths=[str(PACKAGE_DIR)],
            input_example=frame, signature=signature(plan, frame, outputs) if outputs is not None else None,
            pip_requirements=[f"xgboost=={package_version('xgboost')}", f"mlflow=={package_version('mlflow-skinny')}",
                              f"pyarrow=={package_version('pyarrow')}", f"pandas=={package_version('pandas')}"],
        )
    return str(info.model_uri)


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
