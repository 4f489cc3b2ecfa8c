"""Every hyperparameter, declared once: name, type, default, valid range and tuning range.

The container validates a job's hyperparameters against :data:`HYPERPARAMETERS`
(:mod:`training.hyperparameters.parse`); the launcher builds the tuning job's ranges from the same
table. The objective's choices and the hyperparameters that belong to some objectives only come
from the objective catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from training.objectives.catalog import OBJECTIVE_PARAMS, OBJECTIVES
from training.read import snapshot

REQUIRED = object()
"""Default of a hyperparameter that has none: the job must set it."""

RESERVED_PREFIXES = ("sagemaker_", "_")
"""Keys SageMaker or a tuning job adds (e.g. ``_tuning_objective_metric``): ignored."""

ALIASES = {"learning_rate": "eta", "min_split_loss": "gamma", "reg_lambda": "lambda", "reg_alpha": "alpha"}
"""XGBoost's other names, which the built-in algorithm accepts too: read as the name they stand for."""

RETIRED = {
    "predictor": "XGBoost 3 chooses the predictor itself",
    "dsplit": "distributed training splits rows (XGBoost 3 has no column split here)",
    "sketch_eps": "hist bins by max_bin, not sketch_eps",
    "lambda_bias": "XGBoost removed gblinear's bias penalty",
    "prob_buffer_row": "XGBoost removed the prediction buffer",
    "deterministic_histogram": "XGBoost 3's histograms are always deterministic",
    "use_dask_gpu_training": "the hosts train with XGBoost's own collective, not Dask",
    "_kfold": "this job trains once, holding out validation_fraction of the rows, instead of k-fold cross-validation",
    "_num_cv_round": "this job trains once instead of k-fold cross-validation",
}
"""Hyperparameters the built-in algorithm accepts that mean nothing here: ignored with one note each."""

RENAMED_VALUES = {("objective", "reg:linear"): "reg:squarederror"}
"""Values XGBoost renamed: read as the new name, with one note."""


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
    searched: bool = True  # a tuning job searches ``tuning`` unless the settings say otherwise
    xgboost: bool = False  # passed to xgb.train's params under the same name (unless None: XGBoost's default)

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
_DART = "booster=dart: "


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _log(low: float, high: float) -> TuningRange:
    return TuningRange("continuous", low, high, scaling="Logarithmic")


HYPERPARAMETERS: tuple[Spec, ...] = (
    # --- data -----------------------------------------------------------------------------------
    Spec("table", str, REQUIRED, "Snowflake table: NAME, SCHEMA.NAME or DATABASE.SCHEMA.NAME"),
    Spec("target", str, "", "target (label) column: required, except with objective=survival:aft, where it is the "
         "lower bound (label_lower_column) if given; survival:cox: the time, negative for a censored row"),
    Spec("features", str, "", "comma-separated feature columns; empty: every column but the target and shard key"),
    Spec("shard_key", str, "", "comma-separated columns hashed to assign rows to hosts; empty: all selected columns"),
    Spec("weight_column", str, "", "numeric column of per-row weights (training and validation); empty: none"),
    Spec("group_column", str, "", "rank:* objectives: the query (group) column, of any type; its rows are one list "
         "to rank, kept on one host and contiguous (the hosts shard by it, read_mode=hash); NULL fails the job"),
    Spec("label_lower_column", str, "", "survival:aft: numeric column of each row's lower time bound (>= 0; 0 for "
         "left-censored); empty: the target"),
    Spec("label_upper_column", str, "", "survival:aft: numeric column of each row's upper time bound (>= the lower "
         "one; NULL or +inf for right-censored)"),
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
    Spec("num_round", int, 100, "boosting rounds", low=1,
         tuning=TuningRange("integer", 50, 500)),
    Spec("eta", float, 0.3, "learning rate", low=0.0, high=1.0, low_open=True,
         tuning=_log(0.01, 0.5), xgboost=True),
    Spec("max_depth", int, 6, "maximum tree depth (0: no limit, with grow_policy lossguide)", low=0,
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
    Spec("max_bin", int, 256, "histogram bins per feature", low=2, xgboost=True),
    Spec("max_cat_to_onehot", int, 4, "text columns with fewer categories than this split one-vs-rest",
         low=1, high=1_000_000, xgboost=True),
    Spec("max_cat_threshold", int, 64, "most categories on one side of a partition split of a text column",
         low=1, high=1_000_000, tuning=TuningRange("integer", 8, 128), xgboost=True),
    Spec("objective", str, "reg:squarederror", "learning objective (reg:linear, XGBoost's old name for "
         "reg:squarederror, is renamed)", xgboost=True,
         choices=tuple(OBJECTIVES)),
    Spec("num_class", int, 0, "classes of a multi:* objective, 2 or more; 0: the label's distinct values (checked "
         "if given)",
         low=0, high=1_000_000),
    Spec("eval_metric", str, "",
         "comma-separated evaluation metrics; the first drives early stopping; ranking metrics take @k (top k) and a "
         "trailing - (an empty list scores 0), error takes @t (threshold); empty: XGBoost's default for the "
         "objective (see the objectives table)"),
    Spec("tree_method", str, "hist", "tree construction algorithm: the job trains with hist (XGBoost's QuantileDMatrix, "
         "which bounds memory, trains with hist only); approx, exact, auto and gpu_hist are accepted and train as hist",
         choices=("hist", "approx", "exact", "auto", "gpu_hist"), xgboost=True),
    Spec("booster", str, "gbtree", "gbtree (trees), dart (trees with dropout) or gblinear (a linear model: numeric "
         "features only, and its matrix holds the shard's values, not bins)", choices=("gbtree", "gblinear", "dart"),
         xgboost=True),
    Spec("max_delta_step", float, None, "largest step a leaf value may take; unset: XGBoost's default (0, no limit; "
         "0.7 for count:poisson); helps logistic objectives on very unbalanced classes", low=0.0, tuning=TuningRange("continuous", 0.0, 10.0), searched=False,
         xgboost=True),
    Spec("scale_pos_weight", float, 1.0, "weight of positive rows against negative ones (binary objectives; "
         "typically negatives / positives)", low=0.0, low_open=True, tuning=_log(1.0, 100.0), searched=False,
         xgboost=True),
    Spec("colsample_bylevel", float, 1.0, "column subsample ratio per tree level", low=0.0, high=1.0, low_open=True,
         tuning=TuningRange("continuous", 0.1, 1.0), searched=False, xgboost=True),
    Spec("colsample_bynode", float, 1.0, "column subsample ratio per split", low=0.0, high=1.0, low_open=True,
         tuning=TuningRange("continuous", 0.1, 1.0), searched=False, xgboost=True),
    Spec("grow_policy", str, "depthwise", "depthwise: split nodes closest to the root; lossguide: split the nodes "
         "with the highest loss change", choices=("depthwise", "lossguide"), xgboost=True),
    Spec("max_leaves", int, 0, "most leaves per tree (0: no limit)", low=0, high=2**31 - 1,
         tuning=TuningRange("integer", 8, 256), searched=False, xgboost=True),
    Spec("num_parallel_tree", int, 1, "trees grown per round (> 1 with subsampling: a boosted random forest)",
         low=1, high=10_000, xgboost=True),
    Spec("sampling_method", str, "uniform", "row sampling with subsample: uniform; gradient_based needs a GPU and "
         "trains as uniform on CPU hosts", choices=("uniform", "gradient_based"), xgboost=True),
    Spec("monotone_constraints", str, "", "per-feature monotone direction (-1, 0, 1): by index as XGBoost takes it, "
         '(1,0,-1), or by column name, {"AGE": 1}'),
    Spec("interaction_constraints", str, "", "feature groups that may interact: by index, [[0,1],[2,3]], or by "
         'column name, [["AGE","INCOME"],["REGION"]]'),
    Spec("base_score", float, None, "initial prediction of every row; unset: XGBoost estimates it from the labels",
         xgboost=True),
    Spec("tweedie_variance_power", float, 1.5, "reg:tweedie's variance power", low=1.0, high=2.0, low_open=True,
         high_open=True, tuning=TuningRange("continuous", 1.1, 1.9), searched=False, xgboost=True),
    Spec("huber_slope", float, 1.0, "reg:pseudohubererror's delta", low=0.0, low_open=True, xgboost=True),
    Spec("quantile_alpha", float, 0.5, "reg:quantileerror's quantile", low=0.0, high=1.0, low_open=True,
         high_open=True, xgboost=True),
    Spec("aft_loss_distribution", str, "normal", "survival:aft's distribution of the log survival time's noise",
         choices=("normal", "logistic", "extreme"), xgboost=True),
    Spec("aft_loss_distribution_scale", float, 1.0, "survival:aft's scale of that noise", low=0.0, low_open=True,
         tuning=TuningRange("continuous", 0.5, 2.0), searched=False, xgboost=True),
    Spec("sample_type", str, "uniform", _DART + "how dropped trees are chosen", choices=("uniform", "weighted"),
         xgboost=True),
    Spec("normalize_type", str, "tree", _DART + "how new trees are weighted against dropped ones",
         choices=("tree", "forest"), xgboost=True),
    Spec("rate_drop", float, 0.0, _DART + "fraction of trees dropped per round", low=0.0, high=1.0,
         tuning=TuningRange("continuous", 0.0, 0.5), searched=False, xgboost=True),
    Spec("one_drop", int, 0, _DART + "1: always drop at least one tree", low=0, high=1, xgboost=True),
    Spec("skip_drop", float, 0.0, _DART + "probability of skipping the dropout in a round", low=0.0, high=1.0,
         tuning=TuningRange("continuous", 0.0, 0.5), searched=False, xgboost=True),
    Spec("updater", str, "", "comma-separated tree updaters: trees are grown by grow_quantile_histmaker (hist; other "
         "grow plugins are replaced by it), then refresh/prune/sync as listed; booster=gblinear: shotgun or "
         "coord_descent; empty: XGBoost's default"),
    Spec("process_type", str, "default", "default: build new trees; update (refresh an existing model's trees) needs "
         "an input model, which this job does not take", choices=("default", "update")),
    Spec("refresh_leaf", int, 1, "with the refresh updater: 1 updates leaf values and node statistics, 0 only the "
         "statistics", low=0, high=1, xgboost=True),
    Spec("verbosity", int, 1, "XGBoost's own messages: 0 silent, 1 warnings, 2 info, 3 debug", low=0, high=3,
         xgboost=True),
    Spec("csv_weights", int, 0, "the built-in algorithm's flag for a weight column in the CSV: here 1 requires "
         "weight_column (the table's weight column)", low=0, high=1),
    Spec("save_model_on_termination", str, "false", "true: when the job is stopped (SIGTERM), the leader also writes "
         "the model trained so far to the model directory", choices=("true", "false")),
    Spec("seed", int, 0, "random seed", low=-(2**31) + 1, high=2**31 - 1, xgboost=True),
    Spec("early_stopping_rounds", int, 0, "stop after this many rounds without validation improvement; 0: off",
         low=0),
    Spec("nthread", int, 0, "threads per host; 0: all cores", low=0),
    Spec("memory_budget_mb", int, 0, "MiB a host's in-memory matrices may take; when any host's shard would need "
         "more, every host trains from external memory (ExtMemQuantileDMatrix cached on the spill volume, hist "
         "only, slower); 0: half the memory the host may use (cgroup limit or RAM); 1: always external memory",
         low=0, high=2**31 - 1),
    Spec("shap_rows", int, 10_000, "most validation rows (shared out over the hosts, evenly spaced in each shard) "
         "whose SHAP values give the evaluation's global SHAP importance; 0: none. TreeSHAP costs far more than a "
         "prediction (about 2 ms a row for 200 trees of depth 6 on 2 cores)", low=0, high=2**31 - 1),
    # --- cluster and checkpoints ---------------------------------------------------------------------
    Spec("tracker_port", int, 9099, "port of the XGBoost tracker on the first host", low=1024, high=65_535),
    Spec("collective_timeout", int, 600,
         "seconds a host waits for its peers (joining, and each collective operation) before failing",
         low=5, high=86_400),
    Spec("checkpoint_interval", int, 10, "rounds between checkpoints", low=1, high=100_000),
)

SPECS: dict[str, Spec] = {spec.name: spec for spec in HYPERPARAMETERS}


_DART_ONLY = ("sample_type", "normalize_type", "rate_drop", "one_drop", "skip_drop")
APPLIES_WHEN: dict[str, tuple[str, tuple[str, ...]]] = {
    **{name: ("booster", ("dart",)) for name in _DART_ONLY},
    **{name: ("objective", tuple(o.name for o in OBJECTIVES.values() if name in o.params))
       for name in OBJECTIVE_PARAMS},
}
"""XGBoost parameters that mean something only next to another's value: sent to XGBoost only then
(XGBoost warns about a parameter it does not use)."""


TREE_ONLY = ("max_depth", "min_child_weight", "subsample", "colsample_bytree", "colsample_bylevel",
             "colsample_bynode", "gamma", "max_bin", "max_cat_to_onehot", "max_cat_threshold", "tree_method",
             "grow_policy", "max_leaves", "num_parallel_tree", "sampling_method", "refresh_leaf", "max_delta_step")
"""XGBoost parameters of tree boosters only: not sent with booster=gblinear (XGBoost warns about each)."""


def tunable() -> list[Spec]:
    """The hyperparameters with a tuning range, in table order (searched by default or not)."""
    return [spec for spec in HYPERPARAMETERS if spec.tuning is not None]
