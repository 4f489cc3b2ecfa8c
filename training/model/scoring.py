"""Raw rows in, predictions out: what an endpoint does with one request, and the model it loads.

The endpoint scores rows as the table has them (text, booleans, dates, timestamps, NULLs), coded
by the column plan stored in the model file (:func:`training.model.booster.predict_rows`, the very
function the MLflow model calls), so a row scores the same in the job, in MLflow and behind the
endpoint. Two bodies are accepted:

- ``text/csv`` with a header row naming the columns; an empty field, ``NA``, ``NaN``, ``null``, ``NULL``
  and the rest of pandas' default NA values are NULL in every column
  (:data:`training.read.columns.NULL_TEXTS`, as ``--data`` CSV files and MLflow read them). Each feature
  column is read by its kind (a number as ``double``, a boolean as one, text for the rest), so a text
  column of digits stays text and ``true``/``false`` are booleans.
- ``application/json``: MLflow's ``{"dataframe_split": {"columns": [...], "data": [[...]]}}`` or
  ``{"dataframe_records": [{...}]}``, or a bare list of records; ``null`` is NULL (and so is ``"NaT"`` in a date or
  timestamp column, as MLflow writes the model's ``serving_input_example.json``).

Every feature column must be present (extra columns, such as the label, are ignored): a header
with a misspelt name would otherwise score every row as if that column were NULL. A request that
does not fit fails as :class:`BadRequest`, one line naming the column (by its name) and the fix: a CSV
body without a header row, a value that does not parse, a number beyond float32 (XGBoost refuses the
inf it becomes). The answer is MLflow's scoring server's shape, ``{"predictions": [{"prediction": ...},
...]}``; for a model with text features each record adds :data:`UNSEEN`, the count of the row's text
values that the vocabulary lacks (scored as missing).

Why not MLflow's own scoring server (``mlflow models serve``): it parses CSV with the signature's
pandas types, which the model's columns (typed Any, so that MLflow hands raw values on) lack, so it
refuses CSV; it scores a row with a missing column silently, and answers a bad request with a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv

from training.contract import MLFLOW_ARTIFACT, MLFLOW_MODEL_FILE, MODEL_FILE
from training.read.columns import NULL_TEXTS, ColumnPlan, RowError

CSV = "text/csv"
JSON = "application/json"
CONTENT_TYPES = (CSV, JSON)
JSON_FORMATS = ("dataframe_split", "dataframe_records")
"""MLflow's names for the two JSON layouts (https://mlflow.org/docs/latest/ml/deployment/)."""
UNSEEN = "unseen_categories"
"""Answer field: how many text features of the row hold a value the model's vocabulary lacks (scored
as missing, as in training); present when the model has text features."""
_CSV_TYPES = {"double": pa.float64(), "boolean": pa.bool_()}
"""How a CSV field of each kind's MLflow type is read; every other type is read as text, which the
column's kind then casts (ISO 8601 dates and times, digits in a text column)."""


class BadRequest(ValueError):
    """A request body the model cannot score; the message is the one line the caller gets back."""


class UnsupportedType(BadRequest):
    """A content type other than :data:`CONTENT_TYPES`."""


def model_file(model_dir: Path) -> Path:
    """The XGBoost model file in ``model_dir``: a training job's ``model/`` holds it at the top; a
    registered MLflow model names it among its artifacts (``MLmodel``)."""
    if (model_dir / MLFLOW_MODEL_FILE).is_file():
        import yaml  # MLmodel is YAML; MLflow's own reader would import mlflow.pyfunc, seconds per worker

        meta = yaml.safe_load((model_dir / MLFLOW_MODEL_FILE).read_text()) or {}
        artifacts = meta.get("flavors", {}).get("python_function", {}).get("artifacts") or {}
        if MLFLOW_ARTIFACT not in artifacts:
            raise ValueError(f"{model_dir}/{MLFLOW_MODEL_FILE} has no {MLFLOW_ARTIFACT!r} artifact: the MLflow model "
                             "was not logged by this project's training job")
        return model_dir / artifacts[MLFLOW_ARTIFACT]["path"]
    if (model_dir / MODEL_FILE).is_file():
        return model_dir / MODEL_FILE
    found = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else []
    raise ValueError(f"{model_dir} holds neither {MODEL_FILE} (a training job's model) nor {MLFLOW_MODEL_FILE} "
                     f"(a registered MLflow model); found {found or 'nothing'}: check the model's ModelDataUrl")


def read_rows(body: bytes, content_type: str, plan: ColumnPlan) -> Any:
    """The request's rows by column name (a DataFrame, or Arrow columns), each feature column present."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == CSV:
        table = _csv_rows(body, plan, _csv_header(body, plan))
        rows, names, count = {n: table.column(n) for n in table.column_names}, table.column_names, table.num_rows
    elif kind == JSON:
        rows = _json_frame(body)
        names, count = list(rows.columns), len(rows)
    else:
        raise UnsupportedType(f"content type {content_type or 'none'!r} is not accepted: send {CSV} (a header row, "
                              f"then rows) or {JSON} (dataframe_split or dataframe_records)")
    missing = [name for name in plan.feature_names if name not in names]
    if missing:
        raise BadRequest(f"the rows have no column {', '.join(map(repr, missing))}: send every feature column "
                         f"({', '.join(plan.feature_names)}); extra columns are ignored")
    if not count:
        raise BadRequest("the request has no rows: send at least one row after the header")
    return rows


def explain_request(query: str | None, custom_attributes: str | None, plan: ColumnPlan) -> int:
    """How many features to explain each row with (:mod:`training.model.explain`): the query parameter
    ``explain=K``, or ``explain=K`` among the ``X-Amzn-SageMaker-Custom-Attributes`` header's ``;``- or
    ``,``-separated pairs (what ``InvokeEndpoint``'s ``CustomAttributes`` carries: SageMaker passes no query
    string on); 0 when neither gives it."""
    from training.model.explain import EXPLAIN, top_k

    value = query
    if value is None and custom_attributes:
        for pair in re.split(r"[;,]", custom_attributes):
            key, _, given = pair.partition("=")
            if key.strip().lower() == EXPLAIN:
                value = given
    try:
        return top_k(value, plan)
    except ValueError as err:
        raise BadRequest(str(err)) from None


def predictions_json(booster: Any, plan: ColumnPlan, rows: Any, explain: int = 0) -> str:
    """``{"predictions": [...]}``: one record per row, as :func:`training.model.booster.predict_rows` names them,
    plus :data:`UNSEEN` when the model has text features, then the row's ``explain`` largest SHAP contributions
    when asked for."""
    from training.model.booster import predict_rows
    from training.model.explain import explanation_columns

    try:
        out = predict_rows(booster, plan, rows, explain)
        if plan.categorical:  # after the predictions, before the explanation
            out.insert(len(out.columns) - len(explanation_columns(explain)), UNSEEN, plan.unseen_categories(rows))
    except RowError as err:
        raise BadRequest(str(err)) from err
    except (pa.ArrowException, ValueError, TypeError) as err:
        raise BadRequest(f"a value does not fit its column's type: {_first_line(err)}") from err
    return '{"predictions": ' + out.to_json(orient="records", double_precision=15) + "}"


def _csv_header(body: bytes, plan: ColumnPlan) -> list[str]:
    """The CSV body's header row; a :class:`BadRequest` when its first line names none of the model's columns
    (no header row: pyarrow would take the first row of values for one)."""
    first = next(csv.reader(io.StringIO(body[:65_536].decode("utf-8-sig", errors="replace"))), [])
    folded = {name.casefold() for name in plan.feature_names}
    if first and not any(name.strip().casefold() in folded for name in first):
        line = ",".join(first)
        raise BadRequest(f"the CSV body has no header row: its first line ({line[:80]}{'...' if len(line) > 80 else ''})"
                         f" names none of the model's columns; send a header row first, e.g. "
                         f"{','.join(plan.feature_names)}")
    return first


def _csv_rows(body: bytes, plan: ColumnPlan, header: list[str]) -> pa.Table:
    types = {name: _CSV_TYPES.get(kind, pa.string()) for name, kind in plan.signature_columns()}
    options = pa_csv.ConvertOptions(column_types=types, null_values=list(NULL_TEXTS), strings_can_be_null=True)
    try:
        return pa_csv.read_csv(io.BytesIO(body), convert_options=options)
    except pa.ArrowException as err:
        # pyarrow counts columns from 0 ("In CSV column #1: ..."): name it as the header does
        message = re.sub(r"In CSV column #(\d+)", lambda m: _column_name(header, int(m[1])), _first_line(err))
        raise BadRequest(f"the CSV body does not parse: {message} (send a header row, then one row per line; an "
                         "empty field, NA or null is NULL)") from err


def _column_name(header: list[str], index: int) -> str:
    return f"column {header[index]!r}" if index < len(header) else f"column {index + 1}"


def _json_frame(body: bytes) -> Any:
    import pandas as pd

    try:
        data = json.loads(body)
    except ValueError as err:
        raise BadRequest(f"the JSON body does not parse: {_first_line(err)}") from err
    if isinstance(data, dict) and len(data) == 1 and next(iter(data)) in JSON_FORMATS:
        layout, data = next(iter(data.items()))
        if layout == "dataframe_split":
            if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
                raise BadRequest('dataframe_split needs {"columns": [names], "data": [[values], ...]}')
            return _frame(lambda: pd.DataFrame(data.get("data", []), columns=data["columns"]))
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        return _frame(lambda: pd.DataFrame.from_records(data))
    raise BadRequest(f"the JSON body must be {{\"dataframe_split\": ...}}, {{\"dataframe_records\": [...]}} or a "
                     f"list of records, got {type(data).__name__}{' with keys ' + str(sorted(data)) if isinstance(data, dict) else ''}")


def _frame(build: Any) -> Any:
    try:
        return build()
    except (ValueError, TypeError) as err:  # rows of other lengths than the columns, ...
        raise BadRequest(f"the rows do not fit the columns: {_first_line(err)}") from err


def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return (lines[0] if lines else type(err).__name__)[:300]
