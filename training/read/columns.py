"""The column plan: what each selected column becomes, decided once from the table's description.

Every use of a column's type derives from the plan: the spill schema and the cast of each fetched
batch (:meth:`ColumnPlan.to_spill`), the matrix batch and XGBoost's ``feature_types``
(:meth:`ColumnPlan.matrix`), the vocabularies of text columns, the lineage digest, the model's
signature, and the coding of raw rows when the model scores them. Adding a kind means adding one
entry to :data:`KINDS`.

How each Snowflake type is treated is :data:`KINDS` (docs/your-table.md shows it to users, and a
test keeps the two equal). NULL is missing (NaN) in every kind; a category the vocabulary does not
hold is missing too. The label of a classification objective (``binary:*``, ``multi:*``) has kind
``class``: its distinct values, over the whole job, become the label vocabulary, and predictions
map back to them.

This module needs only numpy, pyarrow and pandas: the MLflow model runs it to score raw rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import time as dt_time
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PLAN_VERSION = 1
"""Version of :meth:`ColumnPlan.to_json`'s format (stored in the model file)."""

FEATURE, LABEL, WEIGHT, GROUP, UPPER = "feature", "label", "weight", "group", "label_upper"
"""A column's role in the job: ``group`` is a ranking job's query column, ``label_upper`` a
survival:aft job's upper time bound (its lower bound is the label)."""

NULL_TEXTS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
              "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
"""The CSV fields that mean NULL, in every column: pandas' default ``na_values``. MLflow reads CSV with
pandas' defaults (``mlflow models predict -t csv``), which a model cannot change, so every CSV reader
of ours (``--data`` files, the endpoint's ``text/csv``) reads the same fields as NULL, and a row copied
from a CSV file scores the same through each. A text value spelt so (``NA`` for North America) is NULL
in CSV; JSON keeps it (only ``null`` is NULL there)."""

ZONED_TIMESTAMPS = ("TIMESTAMP_LTZ", "TIMESTAMP_TZ")
"""Timestamp types that hold an instant (the connector hands them over in UTC); TIMESTAMP_NTZ, and
TIMESTAMP (NTZ under Snowflake's default ``TIMESTAMP_TYPE_MAPPING``), hold wall-clock time."""

_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_XGBOOST_UNSAFE = str.maketrans({"[": "_", "]": "_", "<": "_"})


# ---------------------------------------------------------------------------------------------
# Kinds: how one Snowflake type becomes the value XGBoost sees


def _plain(array: pa.Array) -> pa.Array:
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def _to_float32(array: pa.Array, _snowflake_type: str) -> pa.Array:
    array = _plain(array)
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        array = pc.cast(array, pa.float64())  # numbers given as text by a caller of the model
    return pc.cast(array, pa.float32(), safe=False)


def _seconds(array: pa.Array, zoned: bool) -> pa.Array:
    """Seconds since the epoch (UTC) of timestamps, dates or ISO 8601 text, as float64.

    ``zoned`` (TIMESTAMP_LTZ, TIMESTAMP_TZ): a value is an instant, as the connector's Arrow hands
    such a column to the job (UTC); text with ``Z`` or an offset (``+05:30``, ``-0200``) is that
    instant, text without one is read as UTC. Otherwise (TIMESTAMP_NTZ, DATE) a value is wall-clock
    time: an offset is dropped, as Snowflake's cast to TIMESTAMP_NTZ drops it, and a timestamp with a
    zone keeps its clock reading there."""
    array = _plain(array)
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        array = _parse_timestamps(array, zoned)
    if pa.types.is_date(array.type):
        days = pc.cast(pc.cast(array, pa.date32()), pa.int32())
        return pc.multiply(pc.cast(days, pa.float64()), 86_400.0)
    if pa.types.is_timestamp(array.type):
        if array.type.tz is not None and not zoned:
            array = pc.local_timestamp(array)
        ticks = pc.cast(array.cast(pa.int64()), pa.float64(), safe=False)
        return pc.divide(ticks, float(_PER_SECOND[array.type.unit]))
    raise TypeError(f"{array.type} is not a date or timestamp")


_TIME_AND_ZONE = r"([T ][0-9:.]+)(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
"""ISO 8601 text's time of day and its zone (``Z``, ``+hh:mm``, ``+hhmm``, ``+hh``): a date's own
``-01`` is no zone."""


def _parse_timestamps(text: pa.Array, zoned: bool) -> pa.Array:
    """ISO 8601 text as timestamps (UTC ticks when ``zoned``; see :func:`_seconds`). Text ``NaT`` is
    NULL: pandas writes a missing datetime so, and MLflow passes it on (its ``serving_input_example.json``)."""
    null = pa.scalar(None, text.type)
    text = pc.if_else(pc.equal(text, "NaT"), null, text)
    # Snowflake's own output (TIMESTAMP_OUTPUT_FORMAT's default ``YYYY-MM-DD HH24:MI:SS.FF3 TZHTZM``) puts a
    # space before the offset; RFC 3339 allows a lowercase ``t`` and ``z``
    text = pc.replace_substring_regex(text, r"([0-9]) ?([+-][0-9]{2}(:?[0-9]{2})?|[Zz])$", r"\1\2")
    text = pc.replace_substring_regex(pc.replace_substring_regex(text, r"z$", "Z"), r"^([0-9-]+)t", r"\1T")
    if not zoned:
        return pc.cast(pc.replace_substring_regex(text, _TIME_AND_ZONE, r"\1"), pa.timestamp("us"))
    has_zone = pc.match_substring_regex(text, _TIME_AND_ZONE)
    instants = pc.cast(pc.cast(pc.if_else(has_zone, text, null), pa.timestamp("us", tz="UTC")), pa.timestamp("us"))
    return pc.if_else(has_zone, instants, pc.cast(pc.if_else(has_zone, null, text), pa.timestamp("us")))


def _date_days(array: pa.Array, _snowflake_type: str) -> pa.Array:
    # floor: a date given as a timestamp with a time of day is still that day, as in the table
    return pc.cast(pc.floor(pc.divide(_seconds(array, zoned=False), 86_400.0)), pa.float32())


def _timestamp_seconds(array: pa.Array, snowflake_type: str) -> pa.Array:
    return pc.cast(_seconds(array, zoned=snowflake_type in ZONED_TIMESTAMPS), pa.float32())


def _time_seconds(array: pa.Array, _snowflake_type: str) -> pa.Array:
    array = _plain(array)
    if pa.types.is_time(array.type):
        ticks = pc.cast(array.cast(pa.int64()), pa.float64(), safe=False)
        return pc.cast(pc.divide(ticks, float(_PER_SECOND[array.type.unit])), pa.float32())
    values = [None if v is None else _clock_seconds(v) for v in array.to_pylist()]  # text from a model caller
    return pa.array(values, pa.float32())


def _clock_seconds(value: Any) -> float:
    clock = value if isinstance(value, dt_time) else dt_time.fromisoformat(str(value))
    return clock.hour * 3600 + clock.minute * 60 + clock.second + clock.microsecond / 1e6


def _to_text(array: pa.Array, _snowflake_type: str) -> pa.Array:
    return pc.cast(_plain(array), pa.string())


def _upper_bound(array: pa.Array, snowflake_type: str) -> pa.Array:
    """An upper time bound: NULL is +inf (right-censored), as XGBoost's AFT wants it."""
    return pc.fill_null(_to_float32(array, snowflake_type), np.float32(np.inf))


def _class_text(array: pa.Array, _snowflake_type: str) -> pa.Array:
    """A class label as text: ``true``/``false``, numbers in their shortest form (1.0 -> ``1``), text as is."""
    array = _plain(array)
    if pa.types.is_boolean(array.type) or pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return pc.cast(array, pa.string())
    return pc.cast(pc.add(pc.cast(array, pa.float64()), 0.0), pa.string())  # + 0.0: -0.0 is class 0


@dataclass(frozen=True)
class Kind:
    """How a column of some Snowflake types is spilled, shown to XGBoost and described to MLflow."""

    name: str
    snowflake_types: tuple[str, ...]
    spill_type: pa.DataType
    xgboost_type: str  # "q" (quantitative) or "c" (categorical)
    mlflow_type: str  # the type in MLflow's terms: the input example's, and how the endpoint reads a CSV field
    to_spill: Callable[[pa.Array, str], pa.Array]  # (values, the column's Snowflake type) -> spilled values
    treatment: str  # the value XGBoost sees, in words
    raw_form: str = "a value of the column's type"  # what a caller of the model sends for it, in words


KINDS: tuple[Kind, ...] = (
    Kind("numeric", ("FIXED", "REAL"), pa.float32(), "q", "double", _to_float32, "float32", "a number"),
    Kind("boolean", ("BOOLEAN",), pa.float32(), "q", "boolean", _to_float32, "1 (true) / 0 (false)",
         "true or false"),
    Kind("categorical", ("TEXT",), pa.string(), "c", "string", _to_text, "code in the job's vocabulary", "text"),
    Kind("date", ("DATE",), pa.float32(), "q", "datetime", _date_days, "days since 1970-01-01",
         "an ISO 8601 date such as 2024-01-31"),
    Kind("timestamp", ("TIMESTAMP", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ"), pa.float32(), "q",
         "datetime", _timestamp_seconds, "seconds since 1970-01-01 00:00",
         "an ISO 8601 timestamp such as 2024-01-31 10:00:00 or 2024-01-31T10:00:00+01:00"),
    Kind("time", ("TIME",), pa.float32(), "q", "string", _time_seconds, "seconds since midnight",
         "an ISO 8601 time such as 10:30:00"),
)
CLASS = Kind("class", (), pa.string(), "c", "string", _class_text, "class code from the label vocabulary")
"""The kind of a classification label (any supported type)."""
GROUP_KIND = Kind("group", (), pa.string(), "", "string", _to_text,
                  "query group: the rows of one value are one ranked list (XGBoost's qid)")
"""The kind of a ranking job's group column (any supported type, kept as text: equal values, one group)."""
UPPER_BOUND = Kind("upper_bound", (), pa.float32(), "", "double", _upper_bound,
                   "float32 upper time bound; NULL or +inf: right-censored")
"""The kind of a survival:aft job's upper bound column (numeric)."""

KIND_BY_NAME: dict[str, Kind] = {kind.name: kind for kind in (*KINDS, CLASS, GROUP_KIND, UPPER_BOUND)}
KIND_OF_TYPE: dict[str, Kind] = {t: kind for kind in KINDS for t in kind.snowflake_types}


def kind_of(snowflake_type: str) -> Kind | None:
    """The kind of a Snowflake type name (the connector's ``FIELD_TYPES`` name), or None if unsupported."""
    return KIND_OF_TYPE.get(snowflake_type)


# ---------------------------------------------------------------------------------------------
# The plan


@dataclass(frozen=True)
class ColumnSpec:
    """One selected column: its name in Snowflake, its type there, its kind and its role."""

    name: str
    snowflake_type: str
    kind: str
    role: str

    @property
    def kind_spec(self) -> Kind:
        return KIND_BY_NAME[self.kind]

    @property
    def needs_vocabulary(self) -> bool:
        return self.kind_spec.xgboost_type == "c"

    def cast(self, array: pa.Array) -> pa.Array:
        """Values of this column (as the connector, or a caller of the model, gives them) as spilled."""
        return self.kind_spec.to_spill(array, self.snowflake_type)

    @property
    def mlflow_type(self) -> str:
        """The column's type as the table has it, in MLflow's terms (a class label: its source type's)."""
        source = kind_of(self.snowflake_type) if self.kind == CLASS.name else self.kind_spec
        return source.mlflow_type if source is not None else "string"


@dataclass(frozen=True)
class ColumnPlan:
    """The selected columns in query and spill order (features, label, then weight, group, upper bound:
    those the job has) and their vocabularies.

    ``vocabularies`` maps each categorical feature and a class label to its values in code order;
    it is empty until the hosts have agreed on it (:func:`merge_vocabularies`).
    """

    columns: tuple[ColumnSpec, ...]
    vocabularies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    # --- the columns ------------------------------------------------------------------------------

    @property
    def features(self) -> list[ColumnSpec]:
        return [c for c in self.columns if c.role == FEATURE]

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.features]

    @property
    def label(self) -> ColumnSpec:
        return next(c for c in self.columns if c.role == LABEL)

    @property
    def weight(self) -> ColumnSpec | None:
        return next((c for c in self.columns if c.role == WEIGHT), None)

    @property
    def group(self) -> ColumnSpec | None:
        """A ranking job's query (group) column."""
        return next((c for c in self.columns if c.role == GROUP), None)

    @property
    def upper(self) -> ColumnSpec | None:
        """A survival:aft job's upper time bound (the label is the lower one)."""
        return next((c for c in self.columns if c.role == UPPER), None)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def xgboost_feature_names(self) -> list[str]:
        """Feature names as XGBoost accepts them: ``[``, ``]`` and ``<`` (refused by XGBoost) become ``_``.

        The table's own names stay in the plan; a name made equal to another gets its position appended.
        """
        out: list[str] = []
        for i, name in enumerate(self.feature_names):
            safe = name.translate(_XGBOOST_UNSAFE)
            out.append(f"{safe}_{i}" if safe != name and safe in self.feature_names + out else safe)
        return out

    @property
    def feature_types(self) -> list[str]:
        """XGBoost's ``feature_types``: ``q`` for numbers, ``c`` for category codes."""
        return [c.kind_spec.xgboost_type for c in self.features]

    @property
    def categorical(self) -> bool:
        return "c" in self.feature_types

    @property
    def vocabulary_columns(self) -> list[str]:
        """Columns whose values the hosts must code identically (text features, a class label)."""
        return [c.name for c in self.columns if c.needs_vocabulary]

    @property
    def classes(self) -> list[Any] | None:
        """The label's classes in code order, as the table has them (None for a numeric label)."""
        if self.label.kind != CLASS.name:
            return None
        source = self.label.snowflake_type
        return [class_value(text, source) for text in self.vocabularies.get(self.label.name, ())]

    # --- spilling ---------------------------------------------------------------------------------

    @cached_property
    def spill_schema(self) -> pa.Schema:
        """The fixed schema of the spilled files: each column in its kind's spill type."""
        return pa.schema([pa.field(c.name, c.kind_spec.spill_type) for c in self.columns])

    def to_spill(self, arrays: Sequence[pa.Array]) -> pa.RecordBatch:
        """The selected columns of a fetched batch (in plan order), each cast by its kind."""
        out = []
        for spec, array in zip(self.columns, arrays, strict=True):
            try:
                out.append(spec.cast(array))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError, ValueError) as err:
                raise ValueError(f"column {spec.name!r} ({spec.snowflake_type}) arrived as {array.type}, which "
                                 f"does not convert to {spec.kind_spec.treatment}: {str(err)[:120]}") from None
        return pa.RecordBatch.from_arrays(out, schema=self.spill_schema)

    # --- the matrix -------------------------------------------------------------------------------

    def with_vocabularies(self, vocabularies: Mapping[str, Sequence[str]]) -> ColumnPlan:
        return replace(self, vocabularies={k: tuple(v) for k, v in vocabularies.items()})

    @cached_property
    def _value_sets(self) -> dict[str, pa.Array]:
        return {name: pa.array(values, pa.string()) for name, values in self.vocabularies.items()}

    def codes(self, name: str, array: pa.Array) -> np.ndarray:
        """Category codes of a spilled text column: its index in the vocabulary, NaN for NULL or unseen."""
        if name not in self._value_sets:
            raise KeyError(f"no vocabulary for column {name!r}: the hosts have not agreed on one yet")
        indices = pc.index_in(array, value_set=self._value_sets[name])
        return indices.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)

    def matrix(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Features (float32, codes for categories), label and weight of a spilled batch."""
        features = np.empty((batch.num_rows, len(self.features)), dtype=np.float32)
        for i, spec in enumerate(self.features):
            features[:, i] = self._values(spec, batch.column(i))
        label = self._values(self.label, self._column(batch, self.label))
        weight = self.weight
        weights = None if weight is None else self._values(weight, self._column(batch, weight))
        return features, label, weights

    def bounds(self, batch: pa.RecordBatch) -> dict[str, np.ndarray]:
        """survival:aft's ``label_lower_bound`` (the label) and ``label_upper_bound`` of a spilled batch;
        empty for other jobs."""
        upper = self.upper
        if upper is None:
            return {}
        return {"label_lower_bound": self._values(self.label, self._column(batch, self.label)),
                "label_upper_bound": self._values(upper, self._column(batch, upper))}

    def group_values(self, batch: pa.RecordBatch) -> pa.Array | None:
        """A ranking job's group values (text) of a spilled batch; None for other jobs."""
        group = self.group
        return None if group is None else self._column(batch, group)

    def _column(self, batch: pa.RecordBatch, spec: ColumnSpec) -> pa.Array:
        return batch.column(self.columns.index(spec))

    def _values(self, spec: ColumnSpec, array: pa.Array) -> np.ndarray:
        if spec.needs_vocabulary:
            return self.codes(spec.name, array)
        return array.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)

    def feature_matrix(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Features of raw rows given by column name (a DataFrame, or arrays as the table has them).

        The same casts and codes as training: a raw row scores exactly as the container coded it.
        A feature column the rows leave out is missing (NULL) in every row.
        """
        # a column left out is all NULL; a value beyond float32 would be inf, which XGBoost refuses
        out = np.full((self._row_count(columns), len(self.features)), np.nan, dtype=np.float32)
        for i, spec in enumerate(self.features):
            if spec.name in columns:
                out[:, i] = self._values(spec, _raw_cast(spec, columns[spec.name]))
                infinite = np.flatnonzero(np.isinf(out[:, i]))
                if infinite.size:
                    raise RowError(f"column {spec.name!r} ({spec.snowflake_type}) has a value beyond float32's range "
                                   f"(3.4e38) in row {infinite[0] + 1}, which XGBoost cannot score: send a number "
                                   "within it, or NULL")
        return out

    def unseen_categories(self, columns: Mapping[str, Any]) -> np.ndarray:
        """How many text features of each raw row hold a value (not NULL) the vocabulary lacks: those
        score as missing, as in training."""
        counts = np.zeros(self._row_count(columns), dtype=np.int64)
        for spec in self.features:
            if spec.needs_vocabulary and spec.name in columns:
                text = _raw_cast(spec, columns[spec.name])
                unseen = pc.and_(pc.is_valid(text), pc.is_null(pc.index_in(text, value_set=self._value_sets[spec.name])))
                counts += unseen.to_numpy(zero_copy_only=False)
        return counts

    def _row_count(self, columns: Mapping[str, Any]) -> int:
        present = [name for name in self.feature_names if name in columns]
        if not present and not hasattr(columns, "shape"):
            raise ValueError(f"the rows have none of the model's columns: {', '.join(self.feature_names)}")
        return len(columns[present[0]]) if present else columns.shape[0]

    # --- what is stored and compared ------------------------------------------------------------

    def to_json(self) -> str:
        """The plan as JSON: stored in the model file, so the model alone can code raw rows."""
        return json.dumps({
            "version": PLAN_VERSION,
            "columns": [{"name": c.name, "snowflake_type": c.snowflake_type, "kind": c.kind, "role": c.role}
                        for c in self.columns],
            "vocabularies": {k: list(v) for k, v in self.vocabularies.items()},
        })

    @classmethod
    def from_json(cls, text: str) -> ColumnPlan:
        data = json.loads(text)
        if data.get("version") != PLAN_VERSION:
            raise ValueError(f"column plan version {data.get('version')!r} is not {PLAN_VERSION}")
        columns = tuple(ColumnSpec(**c) for c in data["columns"])
        return cls(columns, {k: tuple(v) for k, v in data["vocabularies"].items()})

    def schema_digest(self) -> str:
        """A short digest of the columns read, their Snowflake types, kinds and roles (for lineage)."""
        parts = [f"{c.name}:{c.snowflake_type}:{c.kind}:{c.role}" for c in self.columns]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def vocabulary_digest(self) -> str:
        """A short digest of every vocabulary in code order: equal digests mean equal category codes."""
        text = json.dumps(sorted((k, list(v)) for k, v in self.vocabularies.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def signature_columns(self) -> list[tuple[str, str]]:
        """``(name, MLflow type)`` of each feature: the model's input as the table has it (the input example's
        types; the signature itself types every column Any: :func:`training.tracking.pyfunc.signature`)."""
        return [(c.name, c.mlflow_type) for c in self.features]


class RowError(ValueError):
    """A raw row's value the model cannot score; the message names the column and the fix."""


def _raw_cast(spec: ColumnSpec, values: Any) -> pa.Array:
    """A column of raw rows cast as the job casts what it fetches, or a :class:`RowError` naming the column."""
    try:
        return spec.cast(_arrow(values))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError, ValueError) as err:
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200].rstrip(".")
        raise RowError(f"column {spec.name!r} ({spec.snowflake_type}): {detail}: send {spec.kind_spec.raw_form}, "
                       "or NULL") from None


def _arrow(values: Any) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    return pa.array(values, from_pandas=True)


def class_value(text: str, snowflake_type: str) -> Any:
    """A class as the table has it: ``true`` -> True for BOOLEAN, ``3`` -> 3 for numbers, text as is."""
    kind = kind_of(snowflake_type)
    if kind is not None and kind.name == "boolean":
        return text == "true"
    if kind is not None and kind.name == "numeric":
        number = float(text)
        return int(number) if number.is_integer() else number
    return text
