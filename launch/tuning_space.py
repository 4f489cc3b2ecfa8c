"""The search space of a tuning job: which hyperparameters are tuned, over which ranges.

The space starts from the tuning ranges declared in the hyperparameter table
(:mod:`training.hyperparameters`, one definition per hyperparameter), then the settings'
``[tuning.ranges]`` override some and ``tuning.exclude`` drops some. Every bound of the result
is checked with the container's own validation, so a range the job would refuse fails here,
before a tuning job starts trials that cannot run. :mod:`launch.jobs` turns the space into the
SDK's parameter ranges; ``python -m launch tune --local`` searches it with Optuna.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from launch.validation import hyperparameter_string, show
from training.errors import ConfigError, HyperparameterError
from training.hyperparameters import SPECS, TuningRange, parse_hyperparameters, tunable

SCALINGS = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
"""SageMaker's ScalingType values."""

_RANGE_KEYS = {"low", "high", "values", "scaling"}


class TuningChoices(Protocol):
    """What the space reads from the ``[tuning]`` settings."""

    @property
    def ranges(self) -> Mapping[str, TuningRange]: ...

    @property
    def exclude(self) -> tuple[str, ...]: ...


class TunedSettings(Protocol):
    """Settings with a ``[tuning]`` section (:class:`launch.settings.Settings`)."""

    @property
    def tuning(self) -> TuningChoices: ...

    @property
    def hyperparameters(self) -> Mapping[str, str]: ...


def default_space() -> dict[str, TuningRange]:
    """The hyperparameter table's tuning ranges: what is searched when no settings change it."""
    return {spec.name: spec.tuning for spec in tunable() if spec.tuning is not None and spec.searched}


def search_space(settings: TunedSettings) -> dict[str, TuningRange]:
    """The tuned hyperparameters: the table's tuning ranges, overridden by ``[tuning.ranges]``, less
    ``tuning.exclude`` and less what ``[hyperparameters]`` pins (a pin wins, on AWS and locally)."""
    space = default_space()
    space.update(settings.tuning.ranges)
    for name in (*settings.tuning.exclude, *settings.hyperparameters):
        space.pop(name, None)
    return space


def pinned_note(ranges: Mapping[str, TuningRange], pinned: Mapping[str, str]) -> str | None:
    """The one line that says which would-be tuned hyperparameters (the table's ranges and the
    settings' ``ranges``) a pin keeps fixed, or None."""
    fixed = [f"{name}={pinned[name]}" for name in {**default_space(), **ranges} if name in pinned]
    if not fixed:
        return None
    return (f"not tuned, set in [hyperparameters] or by --set: {', '.join(fixed)} (every trial uses these values; "
            "remove a setting to tune it)")


# ---------------------------------------------------------------------------------------------
# [tuning.ranges]: name = { low = .., high = .., scaling = .. } or { values = [..] }, or {} for the
# table's own range of a hyperparameter that is not searched by default (e.g. max_delta_step)


def parse_ranges(key: str, value: Any) -> dict[str, TuningRange]:
    """The ranges of the settings table at ``key``; raises :class:`ConfigError` naming the entry."""
    if not isinstance(value, dict):
        raise ConfigError(f"settings [{key}] must be a table of name = {{ low = .., high = .. }}: fix it")
    return {name: parse_range(f"{key}.{name}", name, spec) for name, spec in value.items()}


def parse_range(key: str, name: str, raw: Any) -> TuningRange:
    """One hyperparameter's range, typed by the hyperparameter table."""
    spec = SPECS.get(name)
    if spec is None:
        raise ConfigError(f"settings key {key!r}: {name!r} is not a hyperparameter: use one of {', '.join(SPECS)}")
    if raw == {} and spec.tuning is not None:
        return spec.tuning  # the table's range for it (searched only when asked for)
    if raw == {}:
        raise ConfigError(f"settings key {key!r}: {name!r} has no range of its own: give {{ low = .., high = .. }} "
                          "or { values = [..] }")
    if not isinstance(raw, dict) or set(raw) - _RANGE_KEYS:
        raise ConfigError(f"settings key {key!r} must be {{ low = .., high = .., scaling = .. }} or "
                          f"{{ values = [..] }}, got {show(raw)}: fix it")
    if "values" in raw:
        return _categorical(key, raw)
    if spec.type is str:
        raise ConfigError(f"settings key {key!r}: {name!r} is a string: give values = [..] instead of low/high")
    return _numeric(key, name, raw, integer=spec.type is int)


def _categorical(key: str, raw: dict[str, Any]) -> TuningRange:
    values = raw["values"]
    if not isinstance(values, list) or not values or set(raw) != {"values"}:
        raise ConfigError(f"settings key {key!r}: values must be a non-empty list alone: fix it")
    return TuningRange("categorical", values=tuple(hyperparameter_string(v) for v in values))


def _numeric(key: str, name: str, raw: dict[str, Any], *, integer: bool) -> TuningRange:
    scaling = raw.get("scaling", "Auto")
    if scaling not in SCALINGS:
        raise ConfigError(f"settings key {key}.scaling must be one of {', '.join(SCALINGS)}, got {show(scaling)}")
    low, high = raw.get("low"), raw.get("high")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)) or low >= high:
        raise ConfigError(f"settings key {key!r} needs numbers low < high, got low={low!r} high={high!r}: fix them")
    if not integer:
        return TuningRange("continuous", float(low), float(high), scaling=scaling)
    if not all(isinstance(v, int) for v in (low, high)):
        raise ConfigError(f"settings key {key!r}: {name!r} is an integer: give integer low and high")
    return TuningRange("integer", low, high, scaling=scaling)


# ---------------------------------------------------------------------------------------------
# The whole space against the job


def check_space(space: Mapping[str, TuningRange], strategy: str, hyperparameters: Mapping[str, str]) -> None:
    """Every bound is a value the job accepts (next to ``hyperparameters``), and the strategy can search it."""
    for name, rng in space.items():
        _check_bounds(name, rng, hyperparameters)
    if not space:
        raise ConfigError("settings leave nothing to tune: remove names from tuning.exclude or add [tuning.ranges]")
    if strategy == "Grid" and any(r.kind != "categorical" for r in space.values()):
        raise ConfigError("settings key 'tuning.strategy' = \"Grid\" searches categorical ranges only: give every "
                          "tuned hyperparameter values = [..] in [tuning.ranges], or exclude it")


def _check_bounds(name: str, rng: TuningRange, hyperparameters: Mapping[str, str]) -> None:
    key = f"tuning.ranges.{name}"
    bounds = list(rng.values) if rng.kind == "categorical" else [rng.low, rng.high]
    for bound in bounds:
        text = hyperparameter_string(int(bound) if rng.kind == "integer" else bound)
        try:
            parse_hyperparameters({**hyperparameters, name: text})
        except HyperparameterError as err:
            raise ConfigError(f"settings key {key!r}: {err}") from None
    if rng.scaling == "Logarithmic" and (rng.low or 0) <= 0:
        raise ConfigError(f"settings key {key!r}: Logarithmic scaling needs low > 0: raise low or use Linear")
    if rng.scaling == "ReverseLogarithmic" and (rng.kind != "continuous" or not 0 <= (rng.low or 0) < (rng.high or 1) < 1):
        raise ConfigError(f"settings key {key!r}: ReverseLogarithmic scaling works only on a continuous range within "
                          "[0, 1) (SageMaker refuses it elsewhere): use Logarithmic or Linear")
