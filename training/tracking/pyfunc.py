"""The MLflow model: scores rows as the table has them (text, booleans, dates, timestamps, NULLs).

It wraps the same model file the job writes to ``model/`` and codes raw rows with the column
plan stored inside it (:mod:`training.model.booster`), so a row scored through MLflow gets exactly the
container's coding. Its signature lists the table's own column names.

This module imports ``mlflow`` at the top: :mod:`training.tracking.mlflow_recorder` imports it lazily, only
when a model is logged.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import pandas as pd
import pyarrow as pa
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, Schema

from training.contract import MLFLOW_ARTIFACT, MODEL_FILE
from training.model.booster import embed_plan, load, predict_rows
from training.model.explain import EXPLAIN, top_k
from training.read.columns import ColumnPlan

if TYPE_CHECKING:
    import xgboost as xgb
    from mlflow import MlflowClient

PACKAGE_DIR = Path(__file__).resolve().parents[1]
"""The ``training`` package, shipped with the MLflow model as code (it holds the coding)."""
CODE_FILE = Path(__file__).resolve().with_name("mlflow_model.py")
"""The model's code file (MLflow's models from code: no pickled Python object in the model)."""


class TableModel(mlflow.pyfunc.PythonModel):
    """Predicts from raw rows: loads the XGBoost model file and its column plan."""

    def load_context(self, context: Any) -> None:
        self._booster, self._plan = load(context.artifacts[MLFLOW_ARTIFACT])

    # pd.DataFrame is one of the hints MLflow infers no schema from (the signature given stays the one) and
    # the only one that silences its advice to add hints, which it prints in a scope of its own ("once").
    def predict(self, context, model_input: pd.DataFrame, params=None):  # noqa: ANN001, ANN201
        """A DataFrame of raw rows -> predictions (see :func:`training.model.booster.predict_rows`); with
        ``params={"explain": K}``, each row's K largest SHAP contributions beside
        (:func:`training.model.booster.explain_rows`)."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        try:
            k = top_k((params or {}).get(EXPLAIN), self._plan)
        except ValueError as err:  # MLflow's server answers this one 400, with the message; others 500
            raise MlflowException(str(err), error_code=INVALID_PARAMETER_VALUE) from None
        return predict_rows(self._booster, self._plan, model_input, k)


def signature(plan: ColumnPlan, example: Any, outputs: Any) -> ModelSignature:
    """Inputs: each feature under its table name, NULL allowed, typed ``Any``; outputs: as predicted; one
    parameter, ``explain`` (0: how many SHAP contributions to add to each row).

    ``Any``: MLflow passes every value on as sent, and :func:`training.model.booster.predict_rows` reads
    it with the job's own casts, as the endpoint does. MLflow's conversion to a column type would change
    or refuse rows as the table has them, on its serving paths (``mlflow models serve``, ``mlflow models
    predict``, ``validate_serving_input``) and in ``predict`` itself: a JSON null becomes False in a
    ``boolean`` column; a ``datetime`` column is parsed with one format taken from its first value
    (``2021-01-01 10:00:00`` then ``2021-01-01T10:00:00`` fails) and no zone offsets; ``double`` refuses
    pandas' int64 (a CSV column of whole numbers, as ``pd.read_csv`` reads it); ``string`` refuses a
    column pandas read as numbers or as float NaN (every row's value NULL, e.g. one row with ``NA``).
    """
    from mlflow.models import infer_signature
    from mlflow.types.schema import AnyType, ParamSchema, ParamSpec

    inputs = Schema([ColSpec(AnyType(), name, required=False) for name in plan.feature_names])
    # a parameter MLflow does not find in the signature is dropped (with a warning) on every serving path
    params = ParamSchema([ParamSpec(EXPLAIN, "long", 0)])
    return ModelSignature(inputs=inputs, outputs=infer_signature(example, outputs).outputs, params=params)


def log_model(client: MlflowClient, run_id: str, experiment_id: str, name: str, booster: xgb.Booster,
              plan: ColumnPlan, example: pa.Table | None, params: dict[str, str]) -> str:
    """Log ``booster`` as this module's model named ``name`` in run ``run_id``; return its ``models:/`` URI.

    One model directory is built and uploaded twice: as the MLflow 3 logged model (the UI's model
    view, ``models:/<id>``, what the registry links) and as the run's artifacts under ``name``
    (``runs:/<run id>/<name>``), which is what tools that copy runs between servers carry
    (mlflow-export-import; docs/tracking.md). Both copies have the same MLmodel, naming the logged
    model's id. The model file is the job's own (UBJ, the column plan embedded); ``example``'s raw
    rows become the input example and, scored, the signature's outputs; ``params`` (the run's)
    are the logged model's params, as ``mlflow.pyfunc.log_model`` would set them.
    """
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus

    embed_plan(booster, plan)
    model = client.create_logged_model(experiment_id, name=name, source_run_id=run_id, params=params)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = _save(Path(tmp), name, Model(artifact_path=model.artifact_location, model_uuid=model.model_id,
                                                run_id=run_id, model_id=model.model_id), booster, plan, example)
            client.log_model_artifacts(model.model_id, str(path))
            client.log_artifacts(run_id, str(path), name)
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    except Exception:
        client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    return f"models:/{model.model_id}"


def _save(tmp: Path, name: str, mlflow_model: Model, booster: xgb.Booster, plan: ColumnPlan,
          example: pa.Table | None) -> Path:
    """Build the model directory ``tmp/name`` (MLmodel, code, the model file, input example, signature)."""
    from training.tracking.mlflow_client import package_version

    frame = example_frame(plan, example) if example is not None and example.num_rows else None
    outputs = predict_rows(booster, plan, frame) if frame is not None else None
    source = tmp / MODEL_FILE
    source.write_bytes(booster.save_raw("ubj"))
    path = tmp / name
    with warnings.catch_warnings():
        # The signature is given; MLflow's advice to add type hints to predict() does not apply.
        warnings.filterwarnings("ignore", message=".*type hints to the `predict` method")
        mlflow.pyfunc.save_model(
            str(path), mlflow_model=mlflow_model, python_model=str(CODE_FILE), artifacts={MLFLOW_ARTIFACT: str(source)},
            code_paths=[str(PACKAGE_DIR)], input_example=frame,
            signature=signature(plan, frame, outputs) if outputs is not None else None,
            pip_requirements=[f"xgboost=={package_version('xgboost')}", f"mlflow=={package_version('mlflow-skinny')}",
                              f"pyarrow=={package_version('pyarrow')}", f"pandas=={package_version('pandas')}"],
        )
    return path


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
