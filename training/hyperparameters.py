"""Every hyperparameter, declared once: name, type, default, valid range and tuning range.

The container validates a job's hyperparameters against :data:`HYPERPARAMETERS`; the launcher
builds the tuning job's ranges from the same table. SageMaker hands each value over as a string
(``hyperparameters.json`` holds JSON-encoded strings), so :func:`parse_hyperparameters` decodes
and checks them, and fails on the first bad one with a message that names the key, what was
expected, what was found and the fix.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from training import names, snapshot
from training.errors import HyperparameterError

REQUIRED = object()
"""Default of a hyperparameter that has none: the job must set it."""

RESERVED_PREFIXES = ("sagemaker_", "_")
"""Keys SageMaker or a tuning job adds (e.g. ``_tuning_objective_metric``): ignored."""


@dataclass(frozen=True)
class TuningRange:
    """The range a tuning job searches for one hyperparameter."""

    kind: str  # "continuous", "integer" or "categorical"
    low: float | None = None
    high: float | None = None
    values: tuple[str, ...] = ()
    scaling: str = "Auto"  # SageMaker's ScalingType: Auto, Linear, Logarithmic


@dataclass(frozen=True)
class Spec:
    """One hyperparameter: its type, default, valid range and tuning range."""

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: the low bound itself is not allowed
    high_open: bool = False
    choices: tuple[str, ...] = ()
    tuning: TuningRange | None = None
    xgboost: bool = False  # passed to xgb.train's params under the same name

    def describe(self) -> str:
        """The valid values in words, for error messages and docs."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        kind = _KINDS[self.type]
        if self.low is None and self.high is None:
            return kind
        lo = "(" if self.low_open else "["
        hi = ")" if self.high_open else "]"
        low = "-inf" if self.low is None else _fmt(self.low)
        high = "inf" if self.high is None else _fmt(self.high)
        return f"{kind} in {lo}{low}, {high}{hi}"


_KINDS = {int: "an integer", float: "a number", str: "a string"}


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _log(low: float, high: float) -> TuningRange:
    return TuningRange("continuous", low, high, scaling="Logarithmic")


HYPERPARAMETERS: tuple[Spec, ...] = (
    # --- data -----------------------------------------------------------------------------------
    Spec("table", str, REQUIRED, "Snowflake table: NAME, SCHEMA.NAME or DATABASE.SCHEMA.NAME"),
    Spec("target", str, REQUIRED, "target (label) column"),
    Spec("features", str, "", "comma-separated feature columns; empty: every column but the target and shard key"),
    Spec("shard_key", str, "", "comma-separated columns hashed to assign rows to hosts; empty: all selected columns"),
    Spec("weight_column", str, "", "numeric column of per-row weights (training and validation); empty: none"),
    Spec("max_categories", int, 1000,
         "most distinct values a text column (or a class label) may have; a column over it fails the job",
         low=2, high=1_000_000),
    Spec("validation_fraction", float, 0.2, "fraction of rows held out for validation (by a deterministic hash)",
         low=0.0, high=1.0, low_open=True, high_open=True),
    Spec("split_seed", int, 0, "salt of the train/validation hash: change it to draw another split", low=0),
    Spec("read_mode", str, "scan",
         "scan: the leader runs the one query and deals its result batches to the hosts (one warehouse scan, one "
         "snapshot); hash: each host queries its own MOD(HASH(shard_key)) shard (membership fixed by key)",
         choices=("scan", "hash")),
    Spec("snapshot", str, snapshot.NONE,
         "the point in time every query reads (Snowflake Time Travel, AT(TIMESTAMP => ...)): none: the table as it "
         "is when each query runs; job_start: read_mode=hash hosts all read the table as it was when the leader "
         "started (scan's one query already reads one snapshot); an ISO-8601 timestamp with a timezone (e.g. "
         f"{snapshot.EXAMPLE}): the table as it was then, in either mode (within its Time Travel retention)"),
    Spec("fetch_threads", int, 4, "read_mode=scan: result batches a host downloads at once (memory: about this many "
         "chunks)", low=1, high=32),
    Spec("fetch_pages", int, 1, "read_mode=hash: queries per host shard: >1 bounds client memory on large shards "
         "(each page is one query)", low=1, high=4096),
    Spec("null_target", str, "fail", "rows whose target is NULL: fail the job (default) or drop them",
         choices=("fail", "drop")),
    Spec("query_tag", str, "sagemaker-xgboost", "Snowflake QUERY_TAG of the job's queries"),
    # --- xgboost ----------------------------------------------------------------------------------
    Spec("num_round", int, 100, "boosting rounds", low=1, high=100_000,
         tuning=TuningRange("integer", 50, 500)),
    Spec("eta", float, 0.3, "learning rate", low=0.0, high=1.0, low_open=True,
         tuning=_log(0.01, 0.5), xgboost=True),
    Spec("max_depth", int, 6, "maximum tree depth (0: no limit, with grow_policy lossguide)", low=0, high=64,
         tuning=TuningRange("integer", 3, 10), xgboost=True),
    Spec("min_child_weight", float, 1.0, "minimum hessian sum in a child", low=0.0,
         tuning=TuningRange("continuous", 1.0, 10.0), xgboost=True),
    Spec("subsample", float, 1.0, "row subsample ratio per tree", low=0.0, high=1.0, low_open=True,
         tuning=TuningRange("continuous", 0.5, 1.0), xgboost=True),
    Spec("colsample_bytree", float, 1.0, "column subsample ratio per tree", low=0.0, high=1.0, low_open=True,
         tuning=TuningRange("continuous", 0.5, 1.0), xgboost=True),
    Spec("lambda", float, 1.0, "L2 regularisation", low=0.0, tuning=_log(1e-3, 10.0), xgboost=True),
    Spec("alpha", float, 0.0, "L1 regularisation", low=0.0, tuning=_log(1e-3, 10.0), xgboost=True),
    Spec("gamma", float, 0.0, "minimum loss reduction to split", low=0.0,
         tuning=TuningRange("continuous", 0.0, 5.0), xgboost=True),
    Spec("max_bin", int, 256, "histogram bins per feature", low=2, high=65_536, xgboost=True),
    Spec("max_cat_to_onehot", int, 4, "text columns with fewer categories than this split one-vs-rest",
         low=1, high=1_000_000, xgboost=True),
    Spec("max_cat_threshold", int, 64, "most categories on one side of a partition split of a text column",
         low=1, high=1_000_000, tuning=TuningRange("integer", 8, 128), xgboost=True),
    Spec("objective", str, "reg:squarederror", "learning objective", xgboost=True,
         choices=("reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror", "reg:squaredlogerror",
                  "reg:logistic", "reg:tweedie", "reg:gamma", "count:poisson", "binary:logistic",
                  "binary:logitraw", "binary:hinge", "multi:softprob", "multi:softmax")),
    Spec("num_class", int, 0, "classes of a multi:* objective; 0: the label's distinct values (checked if given)",
         low=0, high=1_000_000),
    Spec("eval_metric", str, "",
         "comma-separated evaluation metrics; the first drives early stopping; empty: rmse for regression, "
         "logloss for binary:*, mlogloss for multi:*"),
    Spec("tree_method", str, "hist", "tree construction algorithm: the job trains with hist (XGBoost's QuantileDMatrix, "
         "which bounds memory, trains with hist only); approx, exact and auto are accepted and train as hist",
         choices=("hist", "approx", "exact", "auto"), xgboost=True),
    Spec("seed", int, 0, "random seed", low=0, high=2**31 - 1, xgboost=True),
    Spec("early_stopping_rounds", int, 0, "stop after this many rounds without validation improvement; 0: off",
         low=0, high=100_000),
    Spec("nthread", int, 0, "threads per host; 0: all cores", low=0, high=1024),
    Spec("memory_budget_mb", int, 0, "MiB a host's in-memory matrices may take; when any host's shard would need "
         "more, every host trains from external memory (ExtMemQuantileDMatrix cached on the spill volume, hist "
         "only, slower); 0: half the memory the host may use (cgroup limit or RAM); 1: always external memory",
         low=0, high=2**31 - 1),
    # --- cluster and checkpoints ---------------------------------------------------------------------
    Spec("tracker_port", int, 9099, "port of the XGBoost tracker on the first host", low=1024, high=65_535),
    Spec("collective_timeout", int, 600,
         "seconds a host waits for its peers (joining, and each collective operation) before failing",
         low=5, high=86_400),
    Spec("checkpoint_interval", int, 10, "rounds between checkpoints", low=1, high=100_000),
)

SPECS: dict[str, Spec] = {spec.name: spec for spec in HYPERPARAMETERS}

EVAL_METRICS = ("rmse", "mae", "mape", "rmsle", "mphe", "logloss", "error", "auc", "aucpr", "merror", "mlogloss",
                "poisson-nloglik", "gamma-nloglik", "tweedie-nloglik")
"""Evaluation metrics the job accepts (ones XGBoost all-reduces across hosts)."""

MULTICLASS_PREFIX = "multi:"
CLASSIFICATION_PREFIXES = ("binary:", MULTICLASS_PREFIX)
"""Objectives whose label is a class: its distinct values become the label vocabulary."""


def default_eval_metric(objective: str) -> str:
    """The metric a job reports when ``eval_metric`` is empty."""
    if objective.startswith(MULTICLASS_PREFIX):
        return "mlogloss"
    if objective.startswith(CLASSIFICATION_PREFIXES):
        return "logloss"
    return "rmse"


@dataclass(frozen=True)
class Hyperparameters:
    """A job's validated hyperparameters: every declared one, given or defaulted."""

    values: dict[str, Any] = field(default_factory=dict)
    readings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Every valid reading of each identifier hyperparameter (see :mod:`training.names`)."""

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def eval_metrics(self) -> list[str]:
        return _split_list(self.values["eval_metric"] or default_eval_metric(self.values["objective"]))

    @property
    def classification(self) -> bool:
        """True when the label is a class (``binary:*``, ``multi:*``)."""
        return self.values["objective"].startswith(CLASSIFICATION_PREFIXES)

    @property
    def multiclass(self) -> bool:
        """True for ``multi:*`` objectives (``num_class`` classes); the other classifiers have two."""
        return self.values["objective"].startswith(MULTICLASS_PREFIX)

    def xgboost_params(self) -> dict[str, Any]:
        """The parameters every host passes to ``xgb.train`` (identical on all hosts)."""
        params = {s.name: self.values[s.name] for s in HYPERPARAMETERS if s.xgboost}
        params["tree_method"] = "hist"  # what QuantileDMatrix trains with; see the tree_method spec
        params["eval_metric"] = self.eval_metrics
        if self.values["nthread"]:
            params["nthread"] = self.values["nthread"]
        return params


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_hyperparameters(raw: dict[str, Any]) -> Hyperparameters:
    """Validate ``raw`` (as in ``hyperparameters.json``) against the table; fill in defaults.

    Reserved keys (``sagemaker_*``, ``_*``) are ignored. Raises :class:`HyperparameterError`.
    """
    given = {k: v for k, v in raw.items() if not k.startswith(RESERVED_PREFIXES)}
    unknown = sorted(set(given) - set(SPECS))
    if unknown:
        raise HyperparameterError(
            f"unknown hyperparameter {unknown[0]!r}: remove it or use one of {', '.join(sorted(SPECS))}"
        )
    values = {}
    for spec in HYPERPARAMETERS:
        if spec.name in given:
            values[spec.name] = _parse_value(spec, given[spec.name])
        elif spec.default is REQUIRED:
            raise HyperparameterError(
                f"hyperparameter {spec.name!r} is required ({spec.help}): set it in the job's hyperparameters"
            )
        else:
            values[spec.name] = spec.default
    _check_eval_metrics(values["eval_metric"])
    values["snapshot"] = snapshot.parse_snapshot(values["snapshot"])
    found = {key: names.readings(key, str(given[key])) for key in names.IDENTIFIER_KEYS if key in given}
    for key, texts in found.items():
        values[key] = texts[-1]  # shown in logs and MLflow params: the decoded reading when there are two
    return Hyperparameters(values, {key: found.get(key, (values[key],)) for key in names.IDENTIFIER_KEYS})


def _decode(text: Any) -> Any:
    """SageMaker passes strings; a tuning job or SDK may JSON-encode them once more."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parse_value(spec: Spec, raw: Any) -> Any:
    decoded = _decode(raw)
    shown = str(raw)[:60]
    try:
        value = _coerce(spec.type, decoded if spec.type is not str else _as_text(spec, raw, decoded))
    except (TypeError, ValueError):
        raise HyperparameterError(
            f"hyperparameter {spec.name!r} must be {spec.describe()}, got {shown!r}: fix its value"
        ) from None
    if not _in_range(spec, value):
        raise HyperparameterError(
            f"hyperparameter {spec.name!r} must be {spec.describe()}, got {shown!r}: set it within that range"
        )
    return value


def _as_text(spec: Spec, raw: Any, decoded: Any) -> str:
    if spec.name in names.IDENTIFIER_KEYS and isinstance(raw, str):
        return raw  # every reading is kept and resolved against the table (training.names)
    if isinstance(decoded, str):
        return decoded
    if isinstance(raw, str):
        return raw
    raise TypeError("not a string")


def _coerce(kind: type, value: Any) -> Any:
    if kind is str:
        return str(value)
    if isinstance(value, bool):
        raise TypeError("bool is not a number")
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        raise TypeError("not an integer")
    if kind is float:
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
        raise TypeError("not a finite number")
    raise TypeError(f"unsupported type {kind}")


def _in_range(spec: Spec, value: Any) -> bool:
    if spec.choices:
        return value in spec.choices
    if spec.low is not None and (value < spec.low or (spec.low_open and value == spec.low)):
        return False
    if spec.high is not None and (value > spec.high or (spec.high_open and value == spec.high)):
        return False
    return True


def _check_eval_metrics(text: str) -> None:
    metrics = _split_list(text)
    bad = [m for m in metrics if m.split("@")[0] not in EVAL_METRICS]
    if (text.strip() and not metrics) or bad:
        raise HyperparameterError(
            f"hyperparameter 'eval_metric' must list metrics from {', '.join(EVAL_METRICS)}, "
            f"got {text[:60]!r}: fix its value"
        )


def tunable() -> list[Spec]:
    """The hyperparameters with a tuning range, in table order."""
    return [spec for spec in HYPERPARAMETERS if spec.tuning is not None]
