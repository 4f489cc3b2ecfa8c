"""Monotone and interaction constraints, given by feature position or by column name.

The built-in SageMaker XGBoost algorithm takes them as XGBoost does, by feature index:
``monotone_constraints="(1,0,-1)"``, ``interaction_constraints="[[0,1],[2,3]]"``. Here the
features are a table's columns, so they may also be named: ``{"AGE": 1, "INCOME": -1}`` and
``[["AGE","INCOME"],["REGION"]]``. A name means what it means in SQL (``age`` is ``AGE``, a
quoted ``"Age"`` is ``Age``); a name that is exactly a feature's stored name matches too. An index
is a position in the job's feature list (:attr:`training.read.columns.ColumnPlan.feature_names`).

:func:`check_monotone` and :func:`check_interaction` validate the syntax when the hyperparameters
are parsed; :func:`resolve_monotone` and :func:`resolve_interaction` turn them into XGBoost's
index form once the column plan is known (every host resolves the same plan the same way).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from training.errors import DataError, HyperparameterError
from training.read.names import stored_name

Item = int | str
"""A feature, by index or by name."""


def _load(key: str, text: str, example: str) -> Any:
    body = text.strip()
    if key == "monotone_constraints" and body.startswith("(") and body.endswith(")"):
        body = "[" + body[1:-1] + "]"  # XGBoost's tuple form
    try:
        return json.loads(body)
    except ValueError:
        raise HyperparameterError(f"hyperparameter {key!r} must be {example}, got {text[:60]!r}: fix its value") \
            from None


_MONOTONE_EXAMPLE = "a tuple of -1/0/1 per feature like (1,0,-1) or an object of column names like {\"AGE\": 1}"
_INTERACTION_EXAMPLE = "a list of feature groups like [[0,1],[2,3]] or [[\"AGE\",\"INCOME\"],[\"REGION\"]]"


def check_monotone(text: str) -> dict[Item, int] | None:
    """``monotone_constraints`` as ``{feature: direction}`` (None when empty); raises on bad syntax."""
    if not text.strip():
        return None
    value = _load("monotone_constraints", text, _MONOTONE_EXAMPLE)
    if isinstance(value, list):
        pairs = list(enumerate(value))
    elif isinstance(value, dict) and value:
        pairs = list(value.items())
    else:
        pairs = []
    if not pairs or any(isinstance(d, bool) or d not in (-1, 0, 1) for _, d in pairs):
        raise HyperparameterError(f"hyperparameter 'monotone_constraints' must be {_MONOTONE_EXAMPLE}, "
                                  f"got {text[:60]!r}: use -1 (decreasing), 0 (none) or 1 (increasing)")
    return {k: int(d) for k, d in pairs}


def check_interaction(text: str) -> list[list[Item]] | None:
    """``interaction_constraints`` as groups of features (None when empty); raises on bad syntax."""
    if not text.strip():
        return None
    value = _load("interaction_constraints", text, _INTERACTION_EXAMPLE)
    ok = (isinstance(value, list) and value and all(isinstance(g, list) and g for g in value)
          and all(_is_item(i) for g in value for i in g))
    if not ok:
        raise HyperparameterError(f"hyperparameter 'interaction_constraints' must be {_INTERACTION_EXAMPLE}, "
                                  f"got {text[:60]!r}: fix its value")
    return value


def _is_item(item: Any) -> bool:
    return (isinstance(item, int) and not isinstance(item, bool) and item >= 0) or (isinstance(item, str) and item)


def resolve_monotone(text: str, features: Sequence[str]) -> str | None:
    """XGBoost's ``(d0,d1,...)`` over ``features`` (unnamed features: 0), or None when not given."""
    given = check_monotone(text)
    if given is None:
        return None
    directions = [0] * len(features)
    for item, direction in given.items():
        directions[_position("monotone_constraints", item, features)] = direction
    return "(" + ",".join(map(str, directions)) + ")"


def resolve_interaction(text: str, features: Sequence[str]) -> str | None:
    """XGBoost's ``[[i,j],[k]]`` over ``features``, or None when not given."""
    groups = check_interaction(text)
    if groups is None:
        return None
    resolved = [[_position("interaction_constraints", item, features) for item in group] for group in groups]
    return json.dumps(resolved, separators=(",", ":"))


def _position(key: str, item: Item, features: Sequence[str]) -> int:
    if isinstance(item, int):
        if item >= len(features):
            raise DataError(f"hyperparameter {key!r} names feature {item}, but the job has {len(features)} features "
                            f"(0 to {len(features) - 1}): fix the index, or name the column")
        return item
    if item in features:
        return list(features).index(item)
    try:
        stored = stored_name(item)
    except HyperparameterError:
        stored = item
    if stored in features:
        return list(features).index(stored)
    near = [f for f in features if f.casefold() == item.strip('"').casefold()]
    hint = f" (did you mean {near[0]!r}? quoted names are case-sensitive)" if near else ""
    shown = ", ".join(list(features)[:20])
    raise DataError(f"hyperparameter {key!r} names {item!r}, which is not a feature of the job{hint}: use one of "
                    f"{shown}")
