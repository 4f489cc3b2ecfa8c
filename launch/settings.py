"""The launcher's settings: one TOML file per user or account, plus command-line overrides.

Contract: :func:`load_settings` reads the file (``--settings PATH``, else ``$LAUNCH_SETTINGS``,
else ``./settings.toml``, else ``launch/settings.toml``), applies ``--set section.key=value``
overrides, and returns a frozen :class:`Settings` or raises :class:`ConfigError` with one line
that names the key, what was expected, what was found and the fix. Everything a job needs is
checked here, before any AWS call: an unknown key, a wrong type, a value out of range, a role
that is not an ARN, spot without a max wait, subnets without security groups, and the job's
hyperparameters (validated with the container's own table, :mod:`training.hyperparameters`).

Why strict: a typo in a settings file otherwise surfaces minutes later as a failed job (or never,
as a silently ignored key). ``launch/settings.example.toml`` is the commented template; the real
``settings.toml`` is git-ignored because it names accounts, roles and buckets.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training import names
from training.errors import ConfigError, HyperparameterError
from training.hyperparameters import SPECS, TuningRange, parse_hyperparameters, tunable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 laptops
    import tomli as tomllib

logger = logging.getLogger(__name__)

SETTINGS_ENV = "LAUNCH_SETTINGS"
"""Environment variable naming the settings file when ``--settings`` is not given."""

EXAMPLE = Path(__file__).with_name("settings.example.toml")
"""The committed, commented template."""

DATA_HYPERPARAMETERS = ("table", "target", "features")
"""Hyperparameters that come from the ``[data]`` section, not ``[hyperparameters]``."""

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
JOB_PREFIX = re.compile(r"^[a-zA-Z0-9](-?[a-zA-Z0-9]){0,19}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")

STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
SCALINGS = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")


def _meta(help: str, **checks: Any) -> dict[str, Any]:
    return {"help": help, **checks}


@dataclass(frozen=True)
class Data:
    """Where the job reads: the Snowflake table and the secret that holds the credentials."""

    table: str = field(metadata=_meta("Snowflake table: NAME, SCHEMA.NAME or DATABASE.SCHEMA.NAME"))
    target: str = field(metadata=_meta("target (label) column"))
    snowflake_secret_id: str = field(metadata=_meta("Secrets Manager id or ARN of the Snowflake secret"))
    features: tuple[str, ...] = field(default=(), metadata=_meta("feature columns; empty: all but the target"))


@dataclass(frozen=True)
class Mlflow:
    """MLflow tracking: passed to the container as environment variables."""

    tracking_uri: str = field(default="", metadata=_meta("MLflow tracking URI or SageMaker MLflow ARN"))
    experiment: str = field(default="", metadata=_meta("MLflow experiment name"))


@dataclass(frozen=True)
class Compute:
    """Instances, volume, run time and spot."""

    instance_type: str = field(default="ml.m5.xlarge", metadata=_meta("instance type", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$"))
    instance_count: int = field(default=1, metadata=_meta("number of hosts", low=1, high=100))
    volume_size_gb: int = field(default=30, metadata=_meta("EBS volume per host (GB)", low=1, high=16384))
    max_runtime_seconds: int = field(default=86_400, metadata=_meta("stop the job after this", low=1, high=2_419_200))
    spot: bool = field(default=False, metadata=_meta("managed spot training"))
    max_wait_seconds: int | None = field(
        default=None, metadata=_meta("spot: total time including waiting for capacity", low=1, high=2_419_200))


@dataclass(frozen=True)
class Output:
    """Where the model and the checkpoints go."""

    s3_path: str = field(metadata=_meta("S3 prefix for model artifacts", pattern=S3_URI.pattern))
    checkpoint_s3_uri: str = field(default="", metadata=_meta("S3 prefix for checkpoints (advised with spot)",
                                                              pattern=S3_URI.pattern, empty_ok=True))
    checkpoint_local_path: str = field(default="/opt/ml/checkpoints", metadata=_meta("checkpoint dir in the container",
                                                                                     pattern=r"^/"))


@dataclass(frozen=True)
class Network:
    """VPC and isolation. Subnets and security groups go together (both or neither)."""

    subnets: tuple[str, ...] = field(default=(), metadata=_meta("VPC subnet ids", item_pattern=r"^subnet-[0-9a-z]+$"))
    security_group_ids: tuple[str, ...] = field(default=(), metadata=_meta("security group ids",
                                                                          item_pattern=r"^sg-[0-9a-z]+$"))
    network_isolation: bool = field(default=False, metadata=_meta("no outbound network from the container"))
    inter_container_encryption: bool = field(default=False, metadata=_meta("encrypt traffic between hosts"))


@dataclass(frozen=True)
class Kms:
    """KMS keys for the hosts' volumes and the output artifacts."""

    volume_key_id: str = field(default="", metadata=_meta("KMS key for the instance volumes"))
    output_key_id: str = field(default="", metadata=_meta("KMS key for the model artifacts in S3"))


@dataclass(frozen=True)
class Tuning:
    """The hyperparameter tuning job (and ``tune.py --local``)."""

    strategy: str = field(default="Bayesian", metadata=_meta("search strategy", choices=STRATEGIES))
    objective: str = field(default="validation:rmse", metadata=_meta("metric to optimise (a metric definition name)"))
    objective_type: str = field(default="Minimize", metadata=_meta("direction", choices=("Minimize", "Maximize")))
    max_jobs: int | None = field(default=None, metadata=_meta("training jobs in all (default 10; Grid: all)",
                                                             low=1, high=10_000))
    max_parallel_jobs: int = field(default=2, metadata=_meta("training jobs at once", low=1, high=100))
    max_runtime_seconds: int | None = field(default=None, metadata=_meta("stop the tuning job after this",
                                                                        low=120, high=15_552_000))
    early_stopping: str = field(default="Off", metadata=_meta("stop weak trials early", choices=("Off", "Auto")))
    random_seed: int | None = field(default=None, metadata=_meta("seed of the search", low=1, high=2**31 - 1))
    warm_start_from: tuple[str, ...] = field(default=(), metadata=_meta("earlier tuning jobs to start from (<= 5)"))
    warm_start_type: str = field(default="IdenticalDataAndAlgorithm", metadata=_meta(
        "warm start type", choices=("IdenticalDataAndAlgorithm", "TransferLearning")))
    hyperband_min_resource: int | None = field(default=None, metadata=_meta("Hyperband: fewest rounds", low=1))
    hyperband_max_resource: int | None = field(default=None, metadata=_meta("Hyperband: most rounds", low=1))
    exclude: tuple[str, ...] = field(default=(), metadata=_meta("hyperparameters not to tune"))
    local_trials: int = field(default=4, metadata=_meta("tune.py --local: trials", low=1, high=1000))
    local_hosts: int = field(default=1, metadata=_meta("tune.py --local: hosts per trial", low=1, high=8))
    ranges: Mapping[str, TuningRange] = field(default_factory=dict, metadata=_meta("searched ranges"))


@dataclass(frozen=True)
class PipelineSettings:
    """The SageMaker Pipeline that runs the tuning job."""

    name: str = field(default="", metadata=_meta("pipeline name (default: <job_prefix>-tuning)",
                                                 pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$", empty_ok=True))
    role: str = field(default="", metadata=_meta("role the pipeline runs as (default: role)"))


@dataclass(frozen=True)
class Settings:
    """Everything the launcher needs, validated. Build with :func:`load_settings`."""

    region: str = field(metadata=_meta("AWS region, e.g. us-west-2", pattern=REGION.pattern))
    role: str = field(metadata=_meta("SageMaker execution role ARN"))
    image: str = field(metadata=_meta("training image URI (ECR)", pattern=r"^\S+$"))
    data: Data
    output: Output
    job_prefix: str = field(default="xgb", metadata=_meta("job name prefix (<= 20 letters, digits, dashes)",
                                                          pattern=JOB_PREFIX.pattern))
    mlflow: Mlflow = field(default_factory=Mlflow)
    compute: Compute = field(default_factory=Compute)
    network: Network = field(default_factory=Network)
    kms: Kms = field(default_factory=Kms)
    tuning: Tuning = field(default_factory=Tuning)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    tags: Mapping[str, str] = field(default_factory=dict, metadata=_meta("tags on every job"))
    hyperparameters: Mapping[str, str] = field(default_factory=dict, metadata=_meta("job hyperparameters"))
    source: str = field(default="", metadata=_meta("the settings file these came from"))

    @property
    def job_hyperparameters(self) -> dict[str, str]:
        """What the job receives: ``[hyperparameters]`` plus table, target and features, as strings.

        Snowflake names are encoded so that each has one reading in the container
        (:func:`training.names.encode`): ``target = '"Label"'`` reaches the column ``Label``.
        """
        merged = dict(self.hyperparameters)
        merged["table"] = self.data.table
        merged["target"] = self.data.target
        if self.data.features:
            merged["features"] = ",".join(self.data.features)
        return {key: names.encode(key, value) for key, value in merged.items()}

    @property
    def eval_metrics(self) -> list[str]:
        return parse_hyperparameters(self.job_hyperparameters).eval_metrics

    @property
    def pipeline_name(self) -> str:
        return self.pipeline.name or f"{self.job_prefix}-tuning"

    @property
    def pipeline_role(self) -> str:
        return self.pipeline.role or self.role


_SPECIAL = {"tags", "hyperparameters", "ranges", "source"}


# ---------------------------------------------------------------------------------------------
# Loading


def find_settings_file(path: str | Path | None = None) -> Path:
    """The settings file to read; raises :class:`ConfigError` naming the fix when there is none."""
    if path is None:
        path = os.environ.get(SETTINGS_ENV) or None
    candidates = [Path(path)] if path else [Path("settings.toml"), Path(__file__).with_name("settings.toml")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    shown = " or ".join(str(c) for c in candidates)
    raise ConfigError(
        f"no settings file at {shown}: copy {EXAMPLE} to launch/settings.toml and fill it in, "
        f"or pass --settings PATH"
    )


def load_settings(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Settings:
    """Read, override (``section.key=value``) and validate the settings."""
    source = find_settings_file(path)
    try:
        raw = tomllib.loads(source.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"settings file {source} is not valid TOML ({err}): fix the syntax") from None
    for override in overrides:
        apply_override(raw, override)
    return settings_from_dict(raw, source=str(source))


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply one ``section.key=value`` override; the value is read as TOML, else as a string."""
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {override!r} is not KEY=VALUE: write e.g. --set compute.instance_count=2")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section: check the key")
        node = child
    node[leaf] = value


def settings_from_dict(raw: Mapping[str, Any], source: str = "<dict>") -> Settings:
    """Validate a parsed settings document and build :class:`Settings`."""
    settings = _build(Settings, dict(raw), prefix="", source=source)
    settings = dataclasses.replace(settings, source=source)
    _check(settings)
    return settings


def _build(cls: type, raw: dict[str, Any], prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        allowed = ", ".join(prefix + name for name in fields)
        raise ConfigError(f"unknown settings key {prefix + unknown[0]!r} in {source}: remove it or use one of {allowed}")
    values: dict[str, Any] = {}
    for name, fld in fields.items():
        key = prefix + name
        if name not in raw:
            if fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
                raise ConfigError(_missing(key, fld, hints[name], source))
            continue
        values[name] = _value(key, raw[name], hints[name], fld, source)
    return cls(**values)


def _missing(key: str, fld: dataclasses.Field, hint: Any, source: str) -> str:
    if dataclasses.is_dataclass(hint):
        return f"settings section [{key}] is missing in {source}: add it (see {EXAMPLE.name})"
    return f"settings key {key!r} ({fld.metadata.get('help', '')}) is missing in {source}: set it (see {EXAMPLE.name})"


def _value(key: str, value: Any, hint: Any, fld: dataclasses.Field, source: str) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"settings key {key!r} must be a [{key}] section, got {_show(value)}: make it a table")
        return _build(hint, value, prefix=key + ".", source=source)
    if fld.name == "tags":
        return _tags(key, value)
    if fld.name == "hyperparameters":
        return _hyperparameters(key, value)
    if fld.name == "ranges":
        return _ranges(key, value)
    return _checked(key, _typed(key, value, hint), fld.metadata)


def _typed(key: str, value: Any, hint: Any) -> Any:
    """Coerce a TOML value to the field's type, or raise naming the key and the type."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    inner = [o for o in options if o is not type(None)]
    target = inner[0]
    if typing.get_origin(target) is tuple:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"settings key {key!r} must be a list of strings, got {_show(value)}: "
                              f'write e.g. {key.rsplit(".", 1)[-1]} = ["a", "b"]')
        return tuple(value)
    if target is bool and isinstance(value, bool):
        return value
    if target is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if target is str and isinstance(value, str):
        return value.strip()
    names = {bool: "true or false", int: "an integer", str: "a string"}
    raise ConfigError(f"settings key {key!r} must be {names[target]}, got {_show(value)}: fix its value")


def _checked(key: str, value: Any, meta: Mapping[str, Any]) -> Any:
    if value is None:
        return value
    bad = _violation(value, meta)
    if bad:
        raise ConfigError(f"settings key {key!r} must be {bad}, got {_show(value)}: fix its value")
    return value


def _violation(value: Any, meta: Mapping[str, Any]) -> str | None:
    if "choices" in meta and value not in meta["choices"]:
        return "one of " + ", ".join(meta["choices"])
    low, high = meta.get("low"), meta.get("high")
    if isinstance(value, int) and not isinstance(value, bool):
        if (low is not None and value < low) or (high is not None and value > high):
            return f"an integer in [{low}, {'inf' if high is None else high}]"
    pattern = meta.get("pattern")
    if isinstance(value, str) and pattern and not (meta.get("empty_ok") and not value):
        if not re.match(pattern, value):
            return f"{meta['help']} matching {pattern}"
    item = meta.get("item_pattern")
    if isinstance(value, tuple) and item and not all(re.match(item, v) for v in value):
        return f"a list of ids matching {item}"
    return None


def _show(value: Any) -> str:
    return repr(value)[:60]


def _tags(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, (str, int, float)) for v in value.values()):
        raise ConfigError(f"settings [{key}] must map tag keys to strings, got {_show(value)}: write e.g. team = \"ml\"")
    tags = {str(k): str(v) for k, v in value.items()}
    for tag_key, tag_value in tags.items():
        if not 1 <= len(tag_key) <= 128 or len(tag_value) > 256 or tag_key.lower().startswith("aws:"):
            raise ConfigError(f"settings tag {tag_key!r} is not a valid tag (key 1-128 chars, not 'aws:', "
                              f"value <= 256 chars): rename or shorten it")
    return tags


def _hyperparameters(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f"settings [{key}] must be a table of name = value, got {_show(value)}: fix it")
    for name in DATA_HYPERPARAMETERS:
        if name in value:
            raise ConfigError(f"settings key 'hyperparameters.{name}' is not allowed: set data.{name} instead")
    return {str(k): hyperparameter_string(v) for k, v in value.items()}


def hyperparameter_string(value: Any) -> str:
    """SageMaker passes every hyperparameter as a string; lists become comma lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(hyperparameter_string(v) for v in value)
    return str(value)


# ---------------------------------------------------------------------------------------------
# Tuning ranges


def _ranges(key: str, value: Any) -> dict[str, TuningRange]:
    if not isinstance(value, dict):
        raise ConfigError(f"settings [{key}] must be a table of name = {{ low = .., high = .. }}: fix it")
    return {name: _range(f"{key}.{name}", name, spec) for name, spec in value.items()}


def _range(key: str, name: str, raw: Any) -> TuningRange:
    spec = SPECS.get(name)
    if spec is None:
        raise ConfigError(f"settings key {key!r}: {name!r} is not a hyperparameter: use one of {', '.join(SPECS)}")
    if not isinstance(raw, dict) or set(raw) - {"low", "high", "values", "scaling"}:
        raise ConfigError(f"settings key {key!r} must be {{ low = .., high = .., scaling = .. }} or "
                          f"{{ values = [..] }}, got {_show(raw)}: fix it")
    if "values" in raw:
        values = raw["values"]
        if not isinstance(values, list) or not values or set(raw) != {"values"}:
            raise ConfigError(f"settings key {key!r}: values must be a non-empty list alone: fix it")
        return TuningRange("categorical", values=tuple(hyperparameter_string(v) for v in values))
    if spec.type is str:
        raise ConfigError(f"settings key {key!r}: {name!r} is a string: give values = [..] instead of low/high")
    scaling = raw.get("scaling", "Auto")
    if scaling not in SCALINGS:
        raise ConfigError(f"settings key {key}.scaling must be one of {', '.join(SCALINGS)}, got {_show(scaling)}")
    low, high = raw.get("low"), raw.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low >= high:
        raise ConfigError(f"settings key {key!r} needs numbers low < high, got low={low!r} high={high!r}: fix them")
    if spec.type is int:
        if not all(isinstance(v, int) for v in (low, high)):
            raise ConfigError(f"settings key {key!r}: {name!r} is an integer: give integer low and high")
        return TuningRange("integer", low, high, scaling=scaling)
    return TuningRange("continuous", float(low), float(high), scaling=scaling)


def search_space(settings: Settings) -> dict[str, TuningRange]:
    """The tuned hyperparameters: the table's tuning ranges, overridden by ``[tuning.ranges]``."""
    space = {spec.name: spec.tuning for spec in tunable() if spec.tuning is not None}
    space.update(settings.tuning.ranges)
    for name in settings.tuning.exclude:
        space.pop(name, None)
    return space


# ---------------------------------------------------------------------------------------------
# Rules between keys


def _check(settings: Settings) -> None:
    _check_role("role", settings.role)
    if settings.pipeline.role:
        _check_role("pipeline.role", settings.pipeline.role)
    _check_spot(settings.compute, settings.output)
    _check_network(settings.network)
    _check_secret_id(settings.data.snowflake_secret_id)
    _check_hyperparameters(settings)
    _check_tuning(settings)


def _check_role(key: str, role: str) -> None:
    if not ROLE_ARN.match(role):
        raise ConfigError(
            f"settings key {key!r} must be an IAM role ARN like arn:aws:iam::123456789012:role/NAME, "
            f"got {_show(role)}: copy the role's ARN from the IAM console"
        )


def _check_spot(compute: Compute, output: Output) -> None:
    if compute.spot and compute.max_wait_seconds is None:
        raise ConfigError(
            "settings key 'compute.spot' is true but 'compute.max_wait_seconds' is not set: spot training "
            f"needs a max wait; set it >= compute.max_runtime_seconds ({compute.max_runtime_seconds})"
        )
    if compute.max_wait_seconds is not None and not compute.spot:
        raise ConfigError("settings key 'compute.max_wait_seconds' applies to spot only: set compute.spot = true "
                          "or remove it")
    if compute.max_wait_seconds is not None and compute.max_wait_seconds < compute.max_runtime_seconds:
        raise ConfigError(
            f"settings key 'compute.max_wait_seconds' ({compute.max_wait_seconds}) must be >= "
            f"compute.max_runtime_seconds ({compute.max_runtime_seconds}): raise it"
        )
    if compute.spot and not output.checkpoint_s3_uri:
        logger.warning("spot training without output.checkpoint_s3_uri: an interrupted job restarts from round 0; "
                       "set output.checkpoint_s3_uri to resume from its checkpoints")


def _check_network(network: Network) -> None:
    if bool(network.subnets) != bool(network.security_group_ids):
        given, other = ("subnets", "security_group_ids") if network.subnets else ("security_group_ids", "subnets")
        raise ConfigError(
            f"settings key 'network.{given}' is set but 'network.{other}' is empty: a VPC config needs both "
            f"subnets and security groups; set network.{other} or remove network.{given}"
        )
    if network.network_isolation:
        logger.warning("network.network_isolation = true: the container cannot reach Snowflake, Secrets Manager "
                       "or MLflow, so the job fails at start unless they are reachable without a network")


def _check_secret_id(secret_id: str) -> None:
    if not secret_id or secret_id.lstrip().startswith("{") or any(c.isspace() for c in secret_id):
        raise ConfigError(
            "settings key 'data.snowflake_secret_id' must be a Secrets Manager secret id or ARN "
            "(never the secret's value): put the secret's name or ARN there"
        )


def _check_hyperparameters(settings: Settings) -> None:
    try:
        parse_hyperparameters(settings.job_hyperparameters)
    except HyperparameterError as err:
        raise ConfigError(f"settings [hyperparameters] in {settings.source}: {err}") from None


def _check_tuning(settings: Settings) -> None:
    tuning = settings.tuning
    if len(tuning.warm_start_from) > 5:
        raise ConfigError("settings key 'tuning.warm_start_from' lists more than 5 jobs: keep at most 5 parents")
    unknown = sorted(set(tuning.exclude) - set(SPECS))
    if unknown:
        raise ConfigError(f"settings key 'tuning.exclude' names {unknown[0]!r}, not a hyperparameter: remove it")
    space = search_space(settings)
    for name, rng in space.items():
        _check_range_bounds(settings, name, rng)
    if not space:
        raise ConfigError("settings leave nothing to tune: remove names from tuning.exclude or add [tuning.ranges]")
    if tuning.strategy == "Grid" and any(r.kind != "categorical" for r in space.values()):
        raise ConfigError("settings key 'tuning.strategy' = \"Grid\" searches categorical ranges only: give every "
                          "tuned hyperparameter values = [..] in [tuning.ranges], or exclude it")
    if tuning.strategy == "Hyperband" and tuning.early_stopping != "Off":
        raise ConfigError("settings key 'tuning.early_stopping' must be \"Off\" with the Hyperband strategy "
                          "(Hyperband stops trials itself): set it to \"Off\"")


def _check_range_bounds(settings: Settings, name: str, rng: TuningRange) -> None:
    key = f"tuning.ranges.{name}"
    bounds = list(rng.values) if rng.kind == "categorical" else [rng.low, rng.high]
    for bound in bounds:
        text = hyperparameter_string(int(bound) if rng.kind == "integer" else bound)
        try:
            parse_hyperparameters({**settings.job_hyperparameters, name: text})
        except HyperparameterError as err:
            raise ConfigError(f"settings key {key!r}: {err}") from None
    if rng.scaling in ("Logarithmic", "ReverseLogarithmic") and (rng.low or 0) <= 0:
        raise ConfigError(f"settings key {key!r}: {rng.scaling} scaling needs low > 0: raise low or use Linear")


# ---------------------------------------------------------------------------------------------
# Local mode: the demo job's hyperparameters from --set, with no settings file


LOCAL_SECTIONS = ("hyperparameters", "data")


def local_hyperparameters(overrides: Sequence[str]) -> dict[str, str]:
    """Hyperparameters that ``--set`` overrides give a local job: ``hyperparameters.NAME`` and ``data.*``.

    The same keys as in a settings file (``--set`` means one thing in every mode); what a local job
    cannot use (compute, output, ...) fails in one line rather than being ignored.
    """
    raw: dict[str, Any] = {}
    for override in overrides:
        apply_override(raw, override)
    for key, value in raw.items():
        if key not in LOCAL_SECTIONS or not isinstance(value, dict):
            hint = (f"hyperparameters are set as hyperparameters.{key}=..." if key in SPECS else
                    "local mode takes hyperparameters.NAME=VALUE and data.table/target/features (use --hosts "
                    "for the host count)")
            raise ConfigError(f"--set {key}: not a setting local mode uses: {hint}")
    data = raw.get("data", {})
    unknown = sorted(set(data) - set(DATA_HYPERPARAMETERS))
    if unknown:
        raise ConfigError(f"--set data.{unknown[0]}: unknown data key: expected one of {', '.join(DATA_HYPERPARAMETERS)}")
    hyperparameters = _hyperparameters("hyperparameters", raw.get("hyperparameters", {}))
    return {**hyperparameters, **{k: hyperparameter_string(v) for k, v in data.items()}}
