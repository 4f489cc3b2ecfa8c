"""Reading a job's hyperparameters: SageMaker hands each value over as a string
(``hyperparameters.json`` holds JSON-encoded strings), so :func:`parse_hyperparameters` decodes and
checks them against the table (:mod:`training.hyperparameters.table`), and fails on the first bad one
with a message that names the key, what was expected, what was found and the fix.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from training.errors import HyperparameterError
from training.hyperparameters.constraints import check_interaction, check_monotone
from training.hyperparameters.table import (
    ALIASES,
    APPLIES_WHEN,
    HYPERPARAMETERS,
    RENAMED_VALUES,
    REQUIRED,
    RESERVED_PREFIXES,
    RETIRED,
    SPECS,
    TREE_ONLY,
    Spec,
)
from training.objectives import catalog
from training.objectives.catalog import OBJECTIVES, label_rule, metric_refusal
from training.objectives.metrics import CUSTOM_METRICS, EVAL_METRICS, metric_form_ok
from training.read import names, snapshot
from training.read.options import ReadOptions


@dataclass(frozen=True)
class Hyperparameters:
    """A job's validated hyperparameters: every declared one, given or defaulted."""

    values: dict[str, Any] = field(default_factory=dict)
    readings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Every valid reading of each identifier hyperparameter (see :mod:`training.read.names`)."""
    notes: tuple[str, ...] = ()
    """One line per hyperparameter that was ignored, renamed or read another way (the leader logs them)."""

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def eval_metrics(self) -> list[str]:
        """The metrics as XGBoost names them in its log (tweedie-nloglik with its variance power, as
        XGBoost appends it)."""
        metrics = _split_list(self.values["eval_metric"] or self.objective_entry.default_metric)
        power = f"{self.values['tweedie_variance_power']:g}"  # XGBoost names it with 6 significant digits
        return [f"{m}@{power}" if m == "tweedie-nloglik" else m for m in metrics]

    @property
    def custom_metrics(self) -> list[str]:
        """The built-in algorithm's metrics XGBoost does not compute (``f1``, ``r2``, ...): the job's
        own, all-reduced (:func:`training.evaluation.report.custom_metric`)."""
        return [m for m in self.eval_metrics if m in CUSTOM_METRICS]

    @property
    def objective_entry(self) -> catalog.Objective:
        """The objective's catalog entry (:mod:`training.objectives.catalog`)."""
        return OBJECTIVES[self.values["objective"]]

    @property
    def classification(self) -> bool:
        """True when the label is a class (``binary:*``, ``multi:*``)."""
        return self.objective_entry.classification

    @property
    def multiclass(self) -> bool:
        """True for ``multi:*`` objectives (``num_class`` classes); the other classifiers have two."""
        return self.objective_entry.family == catalog.MULTICLASS

    @property
    def ranking(self) -> bool:
        """``rank:*`` objectives: rows come in query groups (``group_column``)."""
        return self.objective_entry.family == catalog.RANKING

    @property
    def interval(self) -> bool:
        """``survival:aft``: each row's label is an interval (``label_lower_column``, ``label_upper_column``)."""
        return self.values["objective"] == catalog.SURVIVAL_AFT

    def read_options(self) -> ReadOptions:
        """What the read needs of these hyperparameters, and nothing else."""
        v = self.values
        return ReadOptions(
            table=v["table"], readings=self.readings, objective=v["objective"], classification=self.classification,
            label_rule=label_rule(v["objective"], self.eval_metrics), snapshot=v["snapshot"], read_mode=v["read_mode"],
            query_tag=v["query_tag"], max_categories=v["max_categories"], fetch_pages=v["fetch_pages"],
            fetch_threads=v["fetch_threads"], split_seed=v["split_seed"], validation_fraction=v["validation_fraction"])

    @property
    def linear(self) -> bool:
        """``booster=gblinear``: a linear model, trained from the shard's values rather than bins."""
        return self.values["booster"] == "gblinear"

    def xgboost_params(self) -> dict[str, Any]:
        """The parameters every host passes to ``xgb.train`` (identical on all hosts); the constraints,
        which name columns, are added once the column plan is known (:func:`training.train.boosting.params`)."""
        params = {s.name: self.values[s.name] for s in HYPERPARAMETERS
                  if s.xgboost and self.values[s.name] is not None and _applies(s.name, self.values)}
        if not self.linear:
            params["tree_method"] = "hist"  # what QuantileDMatrix trains with; see the tree_method spec
            params["sampling_method"] = "uniform"  # gradient_based needs a GPU (see its note)
        params["eval_metric"] = [m for m in self.eval_metrics if m not in CUSTOM_METRICS]
        if not params["eval_metric"]:
            params["disable_default_eval_metric"] = 1  # only the job's own metrics are reported
        updater = _updaters(self.values["updater"], self.linear)
        if updater:
            params["updater"] = updater
        if self.values["nthread"]:
            params["nthread"] = self.values["nthread"]
        return params


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _applies(name: str, values: dict[str, Any]) -> bool:
    if name in TREE_ONLY and values["booster"] == "gblinear":
        return False
    other = APPLIES_WHEN.get(name)
    return other is None or values[other[0]] in other[1]


def _not_used(name: str, given: Any, values: dict[str, Any]) -> str:
    """The note for a hyperparameter given where it does nothing."""
    if name in TREE_ONLY and values["booster"] == "gblinear":
        return f"{name}={given} is not used: it applies to trees, and booster is gblinear"
    key, accepted = APPLIES_WHEN[name]
    return f"{name}={given} is not used: it applies with {key}={' or '.join(accepted)}"


GROW_UPDATER = "grow_quantile_histmaker"
_GROW_PLUGINS = ("grow_colmaker", "grow_histmaker", "grow_skmaker", "distcol", GROW_UPDATER)
_AFTER_GROWING = ("refresh", "prune", "sync")
_LINEAR_UPDATERS = ("shotgun", "coord_descent")


def _updaters(text: str, linear: bool) -> str:
    """The ``updater`` XGBoost gets: "" (its default) unless the list adds to growing hist trees."""
    given = _split_list(text)
    if linear:
        return given[0] if given else ""
    used = _tree_updaters(given)
    return ",".join(used) if len(used) > 1 else ""


def _tree_updaters(given: list[str]) -> list[str]:
    """The tree updaters the job runs for ``given``: hist's grower, then the given refresh/prune/sync."""
    return [GROW_UPDATER, *(u for u in given if u in _AFTER_GROWING)]


def _check_updater(text: str, booster: str) -> str | None:
    """Raise on an updater XGBoost does not have; a note when the list is read another way."""
    given = _split_list(text)
    if not given:
        return None
    if booster == "gblinear":
        if len(given) != 1 or given[0] not in _LINEAR_UPDATERS:
            raise HyperparameterError(f"hyperparameter 'updater' must be one of {', '.join(_LINEAR_UPDATERS)} with "
                                      f"booster=gblinear, got {text[:60]!r}: fix its value")
        return None
    unknown = [u for u in given if u not in (*_GROW_PLUGINS, *_AFTER_GROWING)]
    if unknown:
        raise HyperparameterError(f"hyperparameter 'updater' has {unknown[0]!r}, which is not a tree updater: use "
                                  f"{GROW_UPDATER} and any of {', '.join(_AFTER_GROWING)}")
    used = ",".join(_tree_updaters(given))
    if used != ",".join(given):
        return (f"updater={text} is read as {used}: the job grows its trees with hist ({GROW_UPDATER}), from "
                "quantile bins that bound its memory")
    return None


def parse_hyperparameters(raw: dict[str, Any]) -> Hyperparameters:
    """Validate ``raw`` (as in ``hyperparameters.json``) against the table; fill in defaults.

    Reserved keys (``sagemaker_*``, ``_*``) are ignored; the built-in algorithm's aliases, retired
    names and renamed values are read with one note each (:attr:`Hyperparameters.notes`), so its
    jobs' hyperparameters run unchanged. Raises :class:`HyperparameterError`.
    """
    notes = [f"{key} is ignored: {why}" for key, why in RETIRED.items() if key in raw]
    given = {k: v for k, v in raw.items() if not k.startswith(RESERVED_PREFIXES) and k not in RETIRED}
    for alias, name in ALIASES.items():
        if alias in given:
            if name in given and str(given[name]) != str(given[alias]):
                raise HyperparameterError(f"hyperparameters {alias!r} and {name!r} are one setting (XGBoost's two "
                                          f"names for it) with two values: remove {alias!r}")
            given[name] = given.pop(alias)
    unknown = sorted(set(given) - set(SPECS))
    if unknown:
        raise HyperparameterError(
            f"unknown hyperparameter {unknown[0]!r}: remove it or use one of {', '.join(sorted(SPECS))}"
        )
    values = {}
    for spec in HYPERPARAMETERS:
        if spec.name in given:
            values[spec.name] = _parse_value(spec, given[spec.name], notes)
        elif spec.default is REQUIRED:
            raise HyperparameterError(
                f"hyperparameter {spec.name!r} is required ({spec.help}): set it in the job's hyperparameters"
            )
        else:
            values[spec.name] = spec.default
    _check_eval_metrics(values["eval_metric"], values["objective"])
    notes.extend(_check_combinations(values))
    notes.extend(_check_objective_columns(values, given))
    notes.extend(_not_used(name, given[name], values) for name in (*APPLIES_WHEN, *TREE_ONLY)
                 if name in given and not _applies(name, values))
    values["snapshot"] = snapshot.parse_snapshot(values["snapshot"])
    found = {key: names.readings(key, str(given[key])) for key in names.IDENTIFIER_KEYS if key in given}
    for key, texts in found.items():
        values[key] = texts[-1]  # shown in logs and MLflow params: the decoded reading when there are two
    return Hyperparameters(values, {key: found.get(key, (values[key],)) for key in names.IDENTIFIER_KEYS},
                           tuple(notes))


def _check_objective_columns(values: dict[str, Any], given: dict[str, Any]) -> list[str]:
    """The columns an objective needs (target, group, label bounds); raise when one is missing or out of place.

    Ranking reads in ``read_mode=hash`` keyed by the group column, whatever was set (one note each):
    scan deals the one result's chunks, whose boundaries Snowflake picks, so a group could straddle
    two hosts; hashing the group puts each group whole on one host (see docs/your-table.md).
    """
    objective, notes = values["objective"], []
    ranking, interval = OBJECTIVES[objective].family == catalog.RANKING, objective == catalog.SURVIVAL_AFT
    if not values["target"].strip() and not interval:
        raise HyperparameterError(f"hyperparameter 'target' is required (the label column) with objective={objective}"
                                  ": set it in the job's hyperparameters")
    if ranking and not values["group_column"].strip():
        raise HyperparameterError(f"objective {objective} ranks the rows of each query: set group_column to the "
                                  "table's query (group) column")
    if values["group_column"].strip() and not ranking:
        raise HyperparameterError(f"group_column applies to rank:* objectives, and objective is "
                                  f"{objective}: remove group_column or use objective=rank:ndcg")
    bounds = [key for key in ("label_lower_column", "label_upper_column") if values[key].strip()]
    if bounds and not interval:
        raise HyperparameterError(f"{bounds[0]} applies to objective={catalog.SURVIVAL_AFT}, and objective is {objective}: "
                                  f"remove {bounds[0]} or use objective={catalog.SURVIVAL_AFT}")
    if interval and not values["label_upper_column"].strip():
        raise HyperparameterError(f"objective {catalog.SURVIVAL_AFT} needs each row's upper time bound: set "
                                  "label_upper_column (NULL or +inf in a row: right-censored)")
    if interval and not (values["label_lower_column"].strip() or values["target"].strip()):
        raise HyperparameterError(f"objective {catalog.SURVIVAL_AFT} needs each row's lower time bound: set "
                                  "label_lower_column (or target) to that column")
    if ranking and values["read_mode"] != "hash":
        notes.append(f"read_mode={values['read_mode']} is read as hash for {objective}: each host queries the groups "
                     "whose hash is its own, so a query group is never split across hosts")
        values["read_mode"] = "hash"
    if ranking and str(given.get("shard_key", "")).strip():
        notes.append(f"shard_key is replaced by group_column for {objective}: the hosts shard by the group, so "
                     "each group's rows are on one host")
    return notes


def _check_combinations(values: dict[str, Any]) -> list[str]:
    """What one hyperparameter means next to another: raise when they cannot go together; else notes."""
    notes = []
    check_monotone(values["monotone_constraints"])
    check_interaction(values["interaction_constraints"])
    note = _check_updater(values["updater"], values["booster"])
    if note:
        notes.append(note)
    if values["process_type"] == "update":
        raise HyperparameterError("hyperparameter 'process_type' is 'update', which refreshes the trees of an existing "
                                  "model, and this job starts from none: remove process_type (and updater=refresh)")
    if values["num_class"] == 1 and OBJECTIVES[values["objective"]].family == catalog.MULTICLASS:
        raise HyperparameterError(f"hyperparameter 'num_class' is 1, and objective {values['objective']} needs 2 classes "
                                  "or more: set num_class to the target's number of classes, or leave it out to count "
                                  "them from the table")
    if values["csv_weights"] and not values["weight_column"]:
        raise HyperparameterError("hyperparameter 'csv_weights' is 1, which means a weight column: set weight_column "
                                  "to the table's column of per-row weights")
    if values["csv_weights"]:
        notes.append(f"csv_weights=1: the weights are the column weight_column={values['weight_column']}")
    if values["sampling_method"] == "gradient_based":
        notes.append("sampling_method=gradient_based needs a GPU (device=cuda): the hosts train on CPU, with "
                     "uniform sampling")
    if values["booster"] == "gblinear" and (values["monotone_constraints"] or values["interaction_constraints"]):
        raise HyperparameterError("monotone and interaction constraints apply to trees, and booster is gblinear: "
                                  "remove the constraints or use booster=gbtree")
    return notes


def _decode(text: Any) -> Any:
    """SageMaker passes strings; a tuning job or SDK may JSON-encode them once more."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parse_value(spec: Spec, raw: Any, notes: list[str]) -> Any:
    decoded = _decode(raw)
    shown = str(raw)[:60]
    renamed = RENAMED_VALUES.get((spec.name, decoded if isinstance(decoded, str) else str(raw)))
    if renamed is not None:
        notes.append(f"{spec.name}={shown} is read as {renamed}, its name in XGBoost 3")
        return renamed
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
        return raw  # every reading is kept and resolved against the table (training.read.names)
    if isinstance(decoded, str):
        return decoded
    if isinstance(raw, str):
        return raw
    raise TypeError("not a string")


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
"""A number as XGBoost reads one, JSON or not: ``.5`` and ``+0.5`` too (no ``nan``, ``inf`` or ``1_000``)."""


def _coerce(kind: type, value: Any) -> Any:
    if kind is str:
        return str(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        value = float(value)
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


def _check_eval_metrics(text: str, objective: str) -> None:
    metrics = _split_list(text)
    known = EVAL_METRICS + tuple(CUSTOM_METRICS)
    if text.strip() and not metrics:
        raise HyperparameterError(f"hyperparameter 'eval_metric' must list metrics from {', '.join(known)}, "
                                  f"got {text[:60]!r}: fix its value")
    for metric in metrics:
        if metric not in CUSTOM_METRICS and not metric_form_ok(metric):
            raise HyperparameterError(
                f"hyperparameter 'eval_metric' must list metrics from {', '.join(known)} (ranking metrics as "
                f"NAME@k or NAME-, error as error@t), got {metric[:40]!r}: fix its value")
        refusal = metric_refusal(metric, objective)
        if refusal is not None:
            raise HyperparameterError(refusal)
