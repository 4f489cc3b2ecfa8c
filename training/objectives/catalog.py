"""The objective catalog: everything the job knows about each objective, in one entry.

For each objective: its family (which labels, evaluation and predictions it has), the labels it
accepts, its default metric and every metric that applies to it, the hyperparameters only it uses,
and how its raw output becomes a prediction. The hyperparameter table, the read, the evaluation,
the model file and the scoring all read it: adding an objective is one entry here plus its tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.objectives.labels import BINARY_METRICS, RELEVANT_OR_NOT, LabelRange
from training.objectives.metrics import CUSTOM_METRICS, RANKING_METRICS, metric_base

REGRESSION, BINARY, MULTICLASS, RANKING, SURVIVAL = "regression", "binary", "multiclass", "ranking", "survival"
"""The families: regression (``reg:*``, ``count:*``), two classes, several classes, ranked lists, survival."""

VALUE, PROBABILITY, MARGIN, HINGE, PROBABILITIES, CLASS_ID = (
    "value", "probability", "margin", "hinge", "probabilities", "class id")
"""What ``booster.predict`` returns for an objective: the prediction itself (regression, ranking and
survival), the second class's probability (``binary:logistic``), a logit (``binary:logitraw``), 0 or 1
(``binary:hinge``), a probability per class (``multi:softprob``) or a class's index (``multi:softmax``)."""

SURVIVAL_AFT, SURVIVAL_COX = "survival:aft", "survival:cox"

_ONE_OUTPUT = ("rmse", "mae", "mape", "rmsle", "mphe", "logloss", "error", "poisson-nloglik", "gamma-nloglik",
               "gamma-deviance", "tweedie-nloglik")
"""XGBoost's metrics of one output per row (every objective but ``multi:*``, which gives one per class)."""
_RANKED = ("auc", "aucpr")
"""Metrics of the order of the scores against classes or relevance: XGBoost computes them for any
objective, but for a regression or survival label the number means nothing (or XGBoost fails its own
check), and a class id (``multi:softmax``) has no order to score."""
_REGRESSION_OWN = ("r2", "mse")
_CLASSIFICATION_OWN = tuple(m for m in CUSTOM_METRICS if m not in _REGRESSION_OWN)

METRIC_NEEDS = {
    **{name: "query groups: use a rank:* objective with group_column" for name in RANKING_METRICS},
    **{name: f"label bounds: use objective={SURVIVAL_AFT}" for name in ("aft-nloglik", "interval-regression-accuracy")},
    "cox-nloglik": f"censored times: use objective={SURVIVAL_COX}",
    "quantile": "quantile_alpha: use objective=reg:quantileerror",
    **{name: "class probabilities: use a multi:* objective" for name in ("mlogloss", "merror")},
    **{name: "one output per row, and multi:* gives one per class: use mlogloss or merror" for name in _ONE_OUTPUT},
    **{name: "classes or ranked lists: use a binary:*, multi:softprob or rank:* objective" for name in _RANKED},
    **{name: "a regression (reg:*, count:*) objective" for name in _REGRESSION_OWN},
    **{name: "a classification (binary:*, multi:*) objective" for name in _CLASSIFICATION_OWN},
}
"""What each metric needs, in words, for the line that refuses it next to an objective it does not apply to."""


@dataclass(frozen=True)
class Objective:
    """One objective: what its labels, metrics, hyperparameters and output are."""

    name: str
    family: str
    default_metric: str
    metrics: tuple[str, ...]
    """Every metric that applies (by its base name: ``ndcg`` for ``ndcg@5-``)."""
    label: LabelRange | None = None
    """The labels XGBoost accepts (None: any number, or a class)."""
    params: tuple[str, ...] = ()
    """The hyperparameters only this objective uses: sent to XGBoost with it only, noted as unused otherwise."""
    output: str = VALUE
    one_host: bool = False
    """XGBoost computes it from the rows of one host only (``survival:cox``'s risk sets)."""

    @property
    def classification(self) -> bool:
        """The label is a class: its distinct values become the label's vocabulary."""
        return self.family in (BINARY, MULTICLASS)

    @property
    def evaluated(self) -> bool:
        """The job's validation evaluation has summaries for it (not survival)."""
        return self.family != SURVIVAL

    def applies(self, metric: str) -> bool:
        return metric_base(metric) in self.metrics


_REGRESSION_METRICS = _ONE_OUTPUT + _REGRESSION_OWN
_BINARY_METRICS = _ONE_OUTPUT + _RANKED + _CLASSIFICATION_OWN
_MULTICLASS_METRICS = ("mlogloss", "merror") + _CLASSIFICATION_OWN
_RANKING_METRICS = _ONE_OUTPUT + _RANKED + RANKING_METRICS
_SCALE_POS = ("scale_pos_weight",)
_AT_LEAST_0 = "a value >= 0"
_RELEVANCE = LabelRange(0.0, 31.0, "a relevance degree in [0, 31]")

OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("reg:squarederror", REGRESSION, "rmse", _REGRESSION_METRICS, params=_SCALE_POS),
    Objective("reg:absoluteerror", REGRESSION, "mae", _REGRESSION_METRICS),
    Objective("reg:pseudohubererror", REGRESSION, "mphe", _REGRESSION_METRICS, params=("huber_slope",)),
    Objective("reg:squaredlogerror", REGRESSION, "rmsle", _REGRESSION_METRICS,
              LabelRange(-1.0, float("inf"), "a value > -1 (its log1p is taken)", low_open=True)),
    Objective("reg:logistic", REGRESSION, "rmse", _REGRESSION_METRICS, LabelRange(0.0, 1.0, "a probability in [0, 1]"),
              params=_SCALE_POS),
    Objective("reg:tweedie", REGRESSION, "tweedie-nloglik", _REGRESSION_METRICS,
              LabelRange(0.0, float("inf"), _AT_LEAST_0), params=("tweedie_variance_power",)),
    Objective("reg:gamma", REGRESSION, "gamma-deviance", _REGRESSION_METRICS,
              LabelRange(0.0, float("inf"), "a value > 0", low_open=True), params=_SCALE_POS),
    Objective("reg:quantileerror", REGRESSION, "quantile", (*_REGRESSION_METRICS, "quantile"),
              params=("quantile_alpha",)),
    Objective("count:poisson", REGRESSION, "poisson-nloglik", _REGRESSION_METRICS,
              LabelRange(0.0, float("inf"), "a count >= 0")),
    Objective("binary:logistic", BINARY, "logloss", _BINARY_METRICS, params=_SCALE_POS, output=PROBABILITY),
    Objective("binary:logitraw", BINARY, "logloss", _BINARY_METRICS, params=_SCALE_POS, output=MARGIN),
    Objective("binary:hinge", BINARY, "error", _BINARY_METRICS, output=HINGE),
    Objective("multi:softprob", MULTICLASS, "mlogloss", _MULTICLASS_METRICS + _RANKED, output=PROBABILITIES),
    Objective("multi:softmax", MULTICLASS, "mlogloss", _MULTICLASS_METRICS, output=CLASS_ID),
    # @32: the ranking objectives' default truncation (lambdarank_num_pair_per_sample)
    Objective("rank:pairwise", RANKING, "ndcg@32", _RANKING_METRICS, _RELEVANCE),
    Objective("rank:ndcg", RANKING, "ndcg@32", _RANKING_METRICS, _RELEVANCE),
    Objective("rank:map", RANKING, "map@32", _RANKING_METRICS, RELEVANT_OR_NOT),
    Objective(SURVIVAL_COX, SURVIVAL, "cox-nloglik", (*_ONE_OUTPUT, "cox-nloglik"), one_host=True),
    Objective(SURVIVAL_AFT, SURVIVAL, "aft-nloglik", (*_ONE_OUTPUT, "aft-nloglik",
                                                      "interval-regression-accuracy"),
              LabelRange(0.0, float("inf"), "a lower time bound >= 0 (0: left-censored)"),
              params=("aft_loss_distribution", "aft_loss_distribution_scale")),
)}
"""Every objective the job trains, by XGBoost 3's name; their defaults are XGBoost's."""

OBJECTIVE_PARAMS = ("tweedie_variance_power", "huber_slope", "quantile_alpha", "aft_loss_distribution",
                    "aft_loss_distribution_scale", "scale_pos_weight")
"""The hyperparameters that belong to some objectives only, in the order the leader notes them."""


def entry(name: str) -> Objective:
    """The catalog's entry for ``name`` (a validated objective: the hyperparameter table's choices)."""
    return OBJECTIVES[name]


def label_rule(name: str, metrics: list[str]) -> tuple[str, LabelRange] | None:
    """What the job's labels must be, and who asks it (``objective rank:map``, ``eval_metric pre@3``)."""
    found = OBJECTIVES[name]
    rule = found.label
    # XGBoost's map, pre and (for ranked lists) aucpr take relevant-or-not labels only: it fails on graded ones
    binary = [m for m in metrics if metric_base(m) in BINARY_METRICS or (found.family == RANKING and m == "aucpr")]
    if binary and rule is not RELEVANT_OR_NOT:
        return f"eval_metric {binary[0]}", RELEVANT_OR_NOT
    return None if rule is None else (f"objective {name}", rule)


def metric_refusal(metric: str, name: str) -> str | None:
    """The line that refuses ``metric`` next to objective ``name``; None where it applies."""
    if OBJECTIVES[name].applies(metric):
        return None
    applicable = f" (metrics of {name}: {', '.join(OBJECTIVES[name].metrics)})"
    if metric in CUSTOM_METRICS:
        return (f"eval_metric {metric!r} needs {METRIC_NEEDS[metric]}, and objective is {name!r}: choose metrics of "
                f"the objective's kind{applicable}")
    return (f"eval_metric {metric} needs {METRIC_NEEDS[metric_base(metric)]}; objective is {name}: remove it from "
            f"eval_metric or change the objective{applicable}")
