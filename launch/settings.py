"""The launcher's settings: one TOML file per user or account, plus command-line overrides.

Contract: :func:`load_settings` reads the file (``--settings PATH``, else ``$LAUNCH_SETTINGS``,
else ``./settings.toml``, else ``launch/settings.toml``), applies ``--set section.key=value``
overrides, and returns a frozen :class:`Settings` or raises :class:`ConfigError` with one line
that names the key, what was expected, what was found and the fix. Everything a job needs is
checked here, before any AWS call: an unknown key, a wrong type, a value out of range, a role
that is not an ARN, spot without a max wait, subnets without security groups, and the job's
hyperparameters (validated with the container's own table, :mod:`training.hyperparameters`).

Each section is a frozen pydantic model in strict mode (unknown keys refused); the field checks
and the wording of their failures live in :mod:`launch.validation`, the tuning ranges in
:mod:`launch.tuning_space`.

Why strict: a typo in a settings file otherwise surfaces minutes later as a failed job (or never,
as a silently ignored key). ``launch/settings.example.toml`` is the commented template; the real
``settings.toml`` is git-ignored because it names accounts, roles and buckets.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from launch import service_model
from launch.metric_definitions import metric_definitions
from launch.tuning_space import check_space, parse_ranges, search_space
from launch.validation import (
    EXAMPLE,
    RoleArn,
    RoleArnOrEmpty,
    SecretIdOrEmpty,
    StringList,
    Tags,
    Text,
    between,
    config_error,
    hyperparameter_string,
    ids_matching,
    matching,
    one_of,
    refused,
    show,
    validated_by,
)
from training import contract
from training.environment import USER_VARIABLES, check_user_environment
from training.errors import ConfigError, CredentialsError, HyperparameterError
from training.hyperparameters import SPECS, TuningRange, parse_hyperparameters
from training.read import names
from training.read.credentials import parse_connection

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 laptops
    import tomli as tomllib

__all__ = ["EXAMPLE", "SETTINGS_ENV", "Settings", "apply_override", "find_settings_file", "load_settings",
           "local_hyperparameters", "search_space",
           "settings_from_dict"]

logger = logging.getLogger(__name__)

WORKLOAD_IDENTITY = "workload_identity"

SETTINGS_ENV = "LAUNCH_SETTINGS"
"""Environment variable naming the settings file when ``--settings`` is not given."""

DATA_HYPERPARAMETERS = ("table", "target", "features")
"""Hyperparameters that come from the ``[data]`` section, not ``[hyperparameters]``."""

JOB_PREFIX = re.compile(r"^[a-zA-Z0-9](-?[a-zA-Z0-9]){0,19}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")

STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
MAX_RUNTIME = 2_419_200
"""SageMaker's longest training job (28 days), in seconds."""


# ---------------------------------------------------------------------------------------------
# Values checked on their own


def _hyperparameters(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f"settings [hyperparameters] must be a table of name = value, got {show(value)}: fix it")
    for name in DATA_HYPERPARAMETERS:
        if name in value:
            raise ConfigError(f"settings key 'hyperparameters.{name}' is not allowed: set data.{name} instead")
    return {str(k): hyperparameter_string(v) for k, v in value.items()}


CREDENTIAL_NAME = re.compile(r"PASSWORD|PASSPHRASE|SECRET|TOKEN|CREDENTIAL|PRIVATE|ACCESS_KEY|API_KEY|AUTH",
                             re.IGNORECASE)
"""Variable names that look like a credential: refused in [environment], whose values DescribeTrainingJob shows."""


def _environment(value: Any) -> dict[str, str]:
    """``[environment]``: the variables docs/image.md says a user sets, read by the container's own parsers.

    A value is never shown in a message: a credential pasted here must not reach a terminal log.
    """
    if not isinstance(value, dict):
        raise ConfigError("settings [environment] must be a table of NAME = value: fix it")
    variables: dict[str, str] = {}
    for name, raw in value.items():
        if CREDENTIAL_NAME.search(str(name)):
            raise ConfigError(f"settings [environment] names {name!r}, which looks like a credential: the job's "
                              "environment is shown by DescribeTrainingJob and in the console; keep credentials in "
                              "the Snowflake secret (data.snowflake_secret_id) or use workload identity, and remove it")
        if name not in USER_VARIABLES:
            raise ConfigError(f"settings [environment] key {name!r} is not a variable the job reads: use one of "
                              f"{', '.join(USER_VARIABLES)} (docs/image.md), or remove it")
        if isinstance(raw, bool):
            raw = "true" if raw else "false"
        if not isinstance(raw, (str, int)):
            raise ConfigError(f"settings [environment] {name} must be a string, a number or true/false: fix its value")
        variables[str(name)] = str(raw)
    try:
        check_user_environment(variables)
    except ConfigError as err:
        raise ConfigError(f"settings [environment]: {err}") from None
    return variables


def _ranges(value: Any) -> dict[str, TuningRange]:
    return parse_ranges("tuning.ranges", value)


Seconds = Annotated[int, between(1, MAX_RUNTIME)]


def _training_instance_type(value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"settings key 'compute.instance_type' must be a string, got {show(value)}: fix its value")
    value = value.strip()
    problem = service_model.unknown_instance_type("settings key 'compute.instance_type'", value,
                                                  service_model.TRAINING_INSTANCE_TYPE)
    if problem:
        raise ConfigError(problem)
    return value


KEEP_ALIVE_MAX = service_model.maximum("ResourceConfig", "KeepAlivePeriodInSeconds")
"""The longest warm pool SageMaker keeps (botocore's model: 21,600 s today)."""
METRIC_DEFINITIONS_MAX = service_model.maximum("AlgorithmSpecification", "MetricDefinitions")
"""How many metric definitions a training job may have (40)."""
NOT_IMPROVING_MIN = service_model.minimum("MaxNumberOfTrainingJobsNotImproving")
"""The fewest trials without improvement after which a tuning job may stop (3)."""


# ---------------------------------------------------------------------------------------------
# Sections


class _Section(BaseModel):
    """A settings section: frozen, strict TOML types (``"2"`` is not 2), unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def connection_text(connection: Mapping[str, str]) -> str:
    """The ``SNOWFLAKE_CONNECTION`` value the job receives (compact JSON)."""
    return json.dumps(dict(connection), sort_keys=True, separators=(",", ":")) if connection else ""


def _connection(value: Any) -> dict[str, str]:
    """``[data.snowflake_connection]``: workload identity, checked by the container's own parser."""
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError("settings [data.snowflake_connection] must be a table of strings: account, warehouse, "
                          "database, schema, role (user optional)")
    data = {"auth": WORKLOAD_IDENTITY, **value}
    try:
        parse_connection(json.dumps(data))
    except CredentialsError as err:
        raise ConfigError(f"settings [data.snowflake_connection]: {err}") from None
    return data


class Data(_Section):
    """Where the job reads: the Snowflake table, and how it signs in (a secret, or the job's role)."""

    table: Text = Field(description="Snowflake table: NAME, SCHEMA.NAME or DATABASE.SCHEMA.NAME")
    target: Text = Field(description="target (label) column")
    snowflake_secret_id: SecretIdOrEmpty = Field(
        "", description="Secrets Manager id or ARN of the Snowflake secret")
    snowflake_connection: Annotated[dict[str, str], validated_by(_connection)] = Field(
        default_factory=dict, description="instead of a secret: workload identity (the job's role signs in)")
    features: StringList = Field((), description="feature columns; empty: all but the target")


class Mlflow(_Section):
    """MLflow tracking: passed to the container as environment variables."""

    tracking_uri: Text = Field("", description="MLflow tracking URI or SageMaker MLflow ARN")
    experiment: Text = Field("", description="MLflow experiment name")


class Compute(_Section):
    """Instances, volume, run time and spot."""

    instance_type: Annotated[str, validated_by(_training_instance_type)] = Field(
        "ml.m5.xlarge", description="instance type (one SageMaker lists for training)")
    instance_count: Annotated[int, between(1, 100)] = Field(1, description="number of hosts")
    volume_size_gb: Annotated[int, between(1, 16384)] = Field(30, description="EBS volume per host (GB)")
    max_runtime_seconds: Seconds = Field(86_400, description="stop the job after this")
    spot: bool = Field(False, description="managed spot training")
    max_wait_seconds: Seconds | None = Field(None, description="spot: total time including waiting for capacity")
    keep_alive_seconds: Annotated[int, between(0, KEEP_ALIVE_MAX)] = Field(
        0, description="warm pool: keep the instances this long after the job for the next matching job (0: off)")


class Output(_Section):
    """Where the model and the checkpoints go."""

    s3_path: Annotated[Text, matching(S3_URI.pattern)] = Field(description="S3 prefix for model artifacts")
    checkpoint_s3_uri: Annotated[Text, matching(S3_URI.pattern, empty_ok=True)] = Field(
        "", description="S3 prefix for checkpoints (advised with spot)")
    checkpoint_local_path: Annotated[Text, matching(r"^/")] = Field(
        str(contract.default_checkpoint_dir(contract.DEFAULT_BASE_DIR)), description="checkpoint dir in the container")
    collective_ledger: bool = Field(
        False, description="each host writes every collective call it makes under <checkpoint_local_path>/ledger, "
        "copied to checkpoint_s3_uri while the job runs: to debug a hung multi-host job (docs/reliability.md)")

    @property
    def ledger_dir(self) -> str:
        """Where the hosts write their collective ledgers: inside the checkpoint folder, which SageMaker syncs."""
        return posixpath.join(self.checkpoint_local_path, "ledger")


class Network(_Section):
    """VPC and isolation. Subnets and security groups go together (both or neither)."""

    subnets: Annotated[StringList, ids_matching(r"^subnet-[0-9a-z]+$")] = Field((), description="VPC subnet ids")
    security_group_ids: Annotated[StringList, ids_matching(r"^sg-[0-9a-z]+$")] = Field(
        (), description="security group ids")
    network_isolation: bool = Field(False, description="no outbound network from the container")
    inter_container_encryption: bool = Field(False, description="encrypt traffic between hosts")


class Kms(_Section):
    """KMS keys for the hosts' volumes and the output artifacts."""

    volume_key_id: Text = Field("", description="KMS key for the instance volumes")
    output_key_id: Text = Field("", description="KMS key for the model artifacts in S3")


class Tuning(_Section):
    """The hyperparameter tuning job (and ``python -m launch tune --local``)."""

    strategy: Annotated[Text, one_of(*STRATEGIES)] = Field("Bayesian", description="search strategy")
    objective: Text = Field("validation:rmse", description="metric to optimise (a metric definition name)")
    objective_type: Annotated[Text, one_of("Minimize", "Maximize")] = Field("Minimize", description="direction")
    max_jobs: Annotated[int, between(1, 10_000)] | None = Field(
        None, description="training jobs in all (default 10; Grid: all)")
    max_parallel_jobs: Annotated[int, between(1, 100)] = Field(2, description="training jobs at once")
    max_runtime_seconds: Annotated[int, between(120, 15_552_000)] | None = Field(
        None, description="stop the tuning job after this")
    early_stopping: Annotated[Text, one_of("Off", "Auto")] = Field("Off", description="stop weak trials early")
    random_seed: Annotated[int, between(1, 2**31 - 1)] | None = Field(None, description="seed of the search")
    warm_start_from: StringList = Field((), description="earlier tuning jobs to start from (<= 5)")
    warm_start_type: Annotated[Text, one_of("IdenticalDataAndAlgorithm", "TransferLearning")] = Field(
        "IdenticalDataAndAlgorithm", description="warm start type")
    hyperband_min_resource: Annotated[int, between(1)] | None = Field(None, description="Hyperband: fewest rounds")
    hyperband_max_resource: Annotated[int, between(1)] | None = Field(None, description="Hyperband: most rounds")
    exclude: StringList = Field((), description="hyperparameters not to tune")
    target_objective_value: float | None = Field(
        None, description="stop the tuning job once a trial reaches this objective value")
    stop_after_not_improving: Annotated[int, between(NOT_IMPROVING_MIN)] | None = Field(
        None, description="stop the tuning job after this many trials in a row that do not improve the best by 1%")
    complete_on_convergence: bool = Field(
        False, description="stop the tuning job when SageMaker detects that the objective has converged")
    local_trials: Annotated[int, between(1, 1000)] = Field(4, description="tune --local: trials")
    local_hosts: Annotated[int, between(1, 8)] = Field(1, description="tune --local: hosts per trial")
    ranges: Annotated[dict[str, TuningRange], validated_by(_ranges)] = Field(
        default_factory=dict, description="searched ranges")


class PipelineSettings(_Section):
    """The SageMaker Pipeline that runs the tuning job."""

    name: Text = Field("", description="pipeline name (default: <job_prefix>-tuning); checked by the pipeline "
                       "command only")
    role: RoleArnOrEmpty = Field(
        "", description="role the pipeline runs as (default: role)")


class Settings(_Section):
    """Everything the launcher needs, validated. Build with :func:`load_settings`."""

    region: Annotated[Text, matching(REGION.pattern)] = Field(description="AWS region, e.g. us-west-2")
    role: RoleArn = Field(description="SageMaker execution role ARN")
    image: Annotated[Text, matching(r"^\S+$")] = Field(description="training image URI (ECR)")
    data: Data
    output: Output
    job_prefix: Annotated[Text, matching(JOB_PREFIX.pattern)] = Field(
        "xgb", description="job name prefix (<= 20 letters, digits, dashes)")
    mlflow: Mlflow = Field(default_factory=Mlflow)
    compute: Compute = Field(default_factory=Compute)
    network: Network = Field(default_factory=Network)
    kms: Kms = Field(default_factory=Kms)
    tuning: Tuning = Field(default_factory=Tuning)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    tags: Tags = Field(default_factory=dict, description="tags on every job")
    hyperparameters: Annotated[dict[str, str], validated_by(_hyperparameters)] = Field(
        default_factory=dict, description="job hyperparameters")
    environment: Annotated[dict[str, str], validated_by(_environment)] = Field(
        default_factory=dict, description="job environment variables you set (docs/image.md): MLFLOW_REQUIRED, "
        "SNOWFLAKE_LOGIN_TIMEOUT, SNOWFLAKE_NETWORK_TIMEOUT, SPILL_DIR")
    _source: str = PrivateAttr("")
    _overridden: frozenset[str] = PrivateAttr(frozenset())

    def model_post_init(self, context: Any, /) -> None:
        """Remember the file these came from and the keys ``--set`` gave (``context={"source": ...,
        "overridden": ...}``), for messages."""
        self._source = (context or {}).get("source", "")
        self._overridden = frozenset((context or {}).get("overridden", ()))

    @model_validator(mode="after")
    def _rules_between_keys(self, info: ValidationInfo) -> Settings:
        context = info.context or {}
        try:
            _check_rules(self, local=bool(context.get("local")), sign_in=context.get("sign_in", True))
        except ConfigError as err:
            raise refused(str(err)) from None
        return self

    @property
    def source(self) -> str:
        """The settings file these came from."""
        return self._source

    def origin(self, key: str) -> str:
        """Where ``key`` (``section.name``) was given, for a message: ``--set section.name`` or ``in FILE``."""
        return f"--set {key}" if key in self._overridden else f"in {self.source}"

    @property
    def job_hyperparameters(self) -> dict[str, str]:
        """What the job receives: ``[hyperparameters]`` plus table, target and features, as strings.

        Snowflake names are encoded so that each has one reading in the container
        (:func:`training.read.names.encode`): ``target = '"Label"'`` reaches the column ``Label``.
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


def load_settings(path: str | Path | None = None, overrides: Sequence[str] = (), *, local: bool = False,
                  sign_in: bool = True) -> Settings:
    """Read, override (``section.key=value``) and validate the settings.

    ``local``: for a local run, which may read a ``--data`` file instead of Snowflake, so the
    settings may name no way to sign in (:func:`launch.local.user_job.choose_snowflake` says what is missing).
    ``sign_in=False``: for the commands that never read the table (``deploy``, ``register``), which
    accept settings that name no way to sign in to Snowflake.
    """
    source = find_settings_file(path)
    try:
        raw = tomllib.loads(source.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"settings file {source} is not valid TOML ({err}): fix the syntax") from None
    for override in overrides:
        apply_override(raw, override)
    overridden = [override.partition("=")[0].strip() for override in overrides]
    return settings_from_dict(raw, source=str(source), local=local, sign_in=sign_in, overridden=overridden)


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
    _warn_lost_quotes(key, leaf, text, value)
    node = raw
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section: check the key")
        node = child
    node[leaf] = value


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'')
"""A TOML string in a --set value: basic ("...") or literal ('...')."""


def _warn_lost_quotes(key: str, leaf: str, text: str, value: Any) -> None:
    """``--set 'data.target="Spend"'`` reads as TOML, so the quotes go and the name means SPEND: say so, with
    the form that keeps them (each name of a list or comma list quoted)."""
    if leaf not in names.IDENTIFIER_KEYS:
        return
    given = [value] if isinstance(value, str) else list(value) if isinstance(value, list) else []
    if not given or not all(isinstance(v, str) for v in given):
        return
    quoted = {a or b for a, b in _QUOTED.findall(text)}
    lost = [v for v in given if v in quoted and not v.startswith('"') and v != v.upper()]  # SPEND: quotes or not
    if not lost:
        return
    parts = [part.strip() for v in given for part in (v.split(",") if leaf in names.LIST_KEYS else [v])]
    escaped = ['\\"' + part.strip('"') + '\\"' for part in parts if part]  # \"Name\" inside a TOML string
    if isinstance(value, list):
        keeps = "[" + ", ".join('"' + e + '"' for e in escaped) + "]"
    else:
        keeps = '"' + ",".join(escaped) + '"'
    logger.warning("--set %s=%s is read as TOML, which removes the quotes: it names %s; for the case-sensitive "
                   "name%s, keep them: --set '%s=%s'", key, text.strip(), ", ".join(p.upper() for p in parts),
                   "s" if len(parts) > 1 else "", key, keeps)


def settings_from_dict(raw: Mapping[str, Any], source: str = "<dict>", *, local: bool = False,
                       sign_in: bool = True, overridden: Sequence[str] = ()) -> Settings:
    """Validate a parsed settings document and build :class:`Settings` (``local``, ``sign_in``: see
    :func:`load_settings`; ``overridden``: the keys ``--set`` gave, named as such in messages)."""
    try:
        return Settings.model_validate(dict(raw), context={"source": source, "local": local, "sign_in": sign_in,
                                                           "overridden": tuple(overridden)})
    except ValidationError as err:
        raise config_error(err, Settings, source, frozenset(overridden)) from None


# ---------------------------------------------------------------------------------------------
# Rules between keys (checked once every key is valid on its own)


def _check_rules(settings: Settings, local: bool = False, sign_in: bool = True) -> None:
    _check_sign_in(settings.data, local or not sign_in)
    _check_tracking(settings, local or not sign_in)  # deploy, register: the laptop reads the registry
    if not local:  # a local run sends nothing to AWS
        _check_aws_names(settings, sign_in)
    _check_image(settings.image, settings.region)
    _check_spot(settings.compute, settings.output)
    _check_ledger(settings.output, local)
    _check_network(settings.network)
    _check_hyperparameters(settings)
    _check_tuning(settings)


def check_under_prefix(what: str, name: str, prefix: str, fix: str = "") -> None:
    """iam/launcher-user-policy.json grants jobs and pipelines named ``<job_prefix>-*`` only."""
    if not name.startswith(f"{prefix}-"):
        raise ConfigError(f"{what} {name!r} does not start with job_prefix '{prefix}-': the launcher's IAM policy "
                          f"grants only names under the prefix; rename it (e.g. '{prefix}-{name}'){fix}")


PIPELINE_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")


def check_pipeline_settings(settings: Settings) -> None:
    """What only the pipeline command needs: its name (a bad one does not stop ``train``)."""
    name = settings.pipeline.name
    if not name:
        return
    if not PIPELINE_NAME.match(name):
        raise ConfigError(f"settings key 'pipeline.name' must be a pipeline name (letters, digits and dashes, "
                          f"starting with a letter or digit), got {show(name)}: fix its value or leave it empty")
    check_under_prefix("settings key 'pipeline.name'", name, settings.job_prefix, " or leave it empty")


LOCAL_ONLY_TRACKING = ("sqlite:", "file:")
"""Tracking URIs of a store on the machine that runs the job (and plain paths, which MLflow reads as
``file:``): a SageMaker job's disk is gone when it ends, and the image's MLflow client (mlflow-skinny)
has no SQLAlchemy for sqlite."""


def _check_tracking(settings: Settings, local: bool) -> None:
    uri = settings.mlflow.tracking_uri
    if local or not uri:
        return
    if uri.lower().startswith(LOCAL_ONLY_TRACKING) or uri.startswith(("/", ".")):
        raise ConfigError(f"settings key 'mlflow.tracking_uri' is a store on the job's own disk ({uri.split(':')[0]}), "
                          "which a SageMaker job cannot use: the image's MLflow client has no SQLAlchemy and the disk "
                          "is gone when the job ends; use an http(s):// MLflow server or a SageMaker MLflow ARN (a "
                          "local run, --local, may keep it)")


SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):")
KMS_ALIAS = re.compile(r"^(alias/|arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:alias/)")


def _check_aws_names(settings: Settings, sign_in: bool = True) -> None:
    """Names the IAM policies (iam/) must match: the secret's region and the checkpoints' bucket (for a job,
    ``sign_in``), KMS key ids and the job prefix (deploy's endpoints are under it too)."""
    region = SECRET_ARN.match(settings.data.snowflake_secret_id) if sign_in else None
    if region and region.group(1) != settings.region:
        raise ConfigError(f"settings key 'data.snowflake_secret_id' is a secret in region {region.group(1)!r} but "
                          f"the job runs in {settings.region!r}: the job reads the secret in its own region; "
                          f"replicate the secret to {settings.region} and give that ARN, or change 'region'")
    for key in ("volume_key_id", "output_key_id"):
        value = getattr(settings.kms, key)
        if KMS_ALIAS.match(value):
            raise ConfigError(f"settings key 'kms.{key}' is an alias ({value}): the IAM policies grant KMS keys by "
                              "id (iam/README.md, ${VolumeKmsKeyId}/${OutputKmsKeyId}); give the key's id or key ARN "
                              f"(aws kms describe-key --key-id {value} --query KeyMetadata.KeyId)")
    if sign_in:
        _check_checkpoint_bucket(settings.output)
    if settings.job_prefix != settings.job_prefix.lower():
        raise ConfigError(f"settings key 'job_prefix' is {settings.job_prefix!r}: use lowercase "
                          f"({settings.job_prefix.lower()!r}); SageMaker writes job and pipeline names in lowercase in "
                          "their ARNs, which the IAM policies match (iam/README.md, ${JobPrefix})")


CONNECTION_MAX = 512
"""CreateTrainingJob's limit on an environment value (the workload identity connection's JSON)."""


def _check_sign_in(data: Data, optional: bool = False) -> None:
    if len(connection_text(data.snowflake_connection)) > CONNECTION_MAX:
        raise ConfigError(f"settings [data.snowflake_connection] is over {CONNECTION_MAX} characters as JSON, "
                          "SageMaker's limit for an environment value: shorten it (leave out user, host or port if "
                          "the defaults do)")
    if optional and not data.snowflake_secret_id and not data.snowflake_connection:
        return  # a local run on a --data file signs in to the embedded Snowflake only; deploy reads no table
    if bool(data.snowflake_secret_id) == bool(data.snowflake_connection):
        raise ConfigError("settings need one way to sign in to Snowflake: data.snowflake_secret_id (a Secrets "
                          "Manager secret) or [data.snowflake_connection] (workload identity: the job's role, no "
                          "secret)" + (", not both" if data.snowflake_secret_id else ""))


ECR_IMAGE = re.compile(r"^(\d{12})\.dkr\.ecr(-fips)?\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/[a-z0-9._/-]+"
                       r"(:[\w.-]{1,128})?(@sha256:[0-9a-f]{64})?$")
"""An ECR image URI: account, region, repository, then a tag, a digest, both or neither (latest)."""
HYPERPARAMETER_VALUE_MAX = 2_500
"""CreateTrainingJob (and a tuning job's static hyperparameters) accept at most this many characters per value."""


def _check_image(image: str, region: str) -> None:
    """SageMaker pulls the training image from ECR in the job's own region (a private registry
    needs TrainingImageConfig, which the launcher does not set)."""
    match = ECR_IMAGE.match(image)
    if match is None:
        if ".dkr.ecr." in image:
            raise ConfigError(f"settings key 'image' {image!r} is not a complete ECR image URI: use the line "
                              "make build-push prints (ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY:TAG)")
        logger.warning("settings key 'image' %r is not an ECR image: SageMaker pulls training images from ECR; "
                       "another registry needs the job's VPC to reach it and TrainingImageConfig, which this "
                       "launcher does not set", image)
        return
    if match.group(3) != region:
        raise ConfigError(f"settings key 'image' is in ECR region {match.group(3)!r} but 'region' is {region!r}: "
                          f"SageMaker pulls from the job's region: push the image there (make build-push "
                          f"REGION={region}) or change 'region'")


def _s3_parts(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key.strip("/")


def _check_checkpoint_bucket(output: Output) -> None:
    """The execution role writes one bucket (iam/README.md, ``${Bucket}/${Prefix}``): the output's. Which
    prefix the policy grants is not in the settings; the bucket must be the same."""
    if not output.checkpoint_s3_uri:
        return
    bucket, theirs = _s3_parts(output.s3_path)[0], _s3_parts(output.checkpoint_s3_uri)[0]
    if theirs != bucket:
        raise ConfigError(f"settings key 'output.checkpoint_s3_uri' is in bucket {theirs!r} but output.s3_path in "
                          f"{bucket!r}: the execution role's policy grants one bucket and prefix for both (iam/README.md, "
                          f"${{Bucket}}/${{Prefix}}); put the checkpoints beside the output, e.g. s3://{bucket}/.../checkpoints")


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
    if compute.spot and compute.keep_alive_seconds:
        raise ConfigError("settings key 'compute.keep_alive_seconds' keeps a warm pool, which SageMaker does not offer "
                          "with managed spot training: set compute.spot = false or remove keep_alive_seconds")
    if compute.spot and not output.checkpoint_s3_uri:
        logger.warning("spot training without output.checkpoint_s3_uri: an interrupted job restarts from round 0; "
                       "set output.checkpoint_s3_uri to resume from its checkpoints")


def _check_ledger(output: Output, local: bool) -> None:
    if output.collective_ledger and not output.checkpoint_s3_uri and not local:  # the local mode always keeps them
        raise ConfigError("settings key 'output.collective_ledger' needs output.checkpoint_s3_uri: the hosts' ledgers "
                          "reach S3 through the checkpoint sync; set it, or remove collective_ledger")


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


def _check_hyperparameters(settings: Settings) -> None:
    for key in DATA_HYPERPARAMETERS:  # the [data] names: a bad one is reported where it was written
        text = settings.job_hyperparameters.get(key)
        if text is not None:
            try:
                names.readings(key, text)
            except HyperparameterError as err:
                raise ConfigError(f"settings key 'data.{key}' ({settings.origin(f'data.{key}')}): {err}") from None
    try:
        parse_hyperparameters(settings.job_hyperparameters)
    except HyperparameterError as err:
        given = [key for key in settings.hyperparameters if f"'{key}'" in str(err)]
        where = settings.origin(f"hyperparameters.{given[0]}") if given else f"in {settings.source}"
        raise ConfigError(f"settings [hyperparameters] ({where}): {err}") from None
    metrics = settings.eval_metrics
    if len(metric_definitions(metrics)) > METRIC_DEFINITIONS_MAX:
        most = METRIC_DEFINITIONS_MAX // (len(metric_definitions(metrics)) // len(metrics))
        raise ConfigError(f"settings [hyperparameters] eval_metric lists {len(metrics)} metrics, which make "
                          f"{len(metric_definitions(metrics))} metric definitions (train and validation each), and "
                          f"SageMaker accepts at most {METRIC_DEFINITIONS_MAX}: list at most {most}")
    for name, value in settings.job_hyperparameters.items():
        if len(value) > HYPERPARAMETER_VALUE_MAX:
            fix = ("leave data.features empty (every column but the target and weight is a feature) or select the "
                   "columns in a view" if name == "features" else "shorten it")
            raise ConfigError(f"hyperparameter {name!r} is {len(value):,} characters, and SageMaker accepts at most "
                              f"{HYPERPARAMETER_VALUE_MAX:,} per value: {fix}")


def _check_tuning(settings: Settings) -> None:
    tuning = settings.tuning
    if len(tuning.warm_start_from) > 5:
        raise ConfigError("settings key 'tuning.warm_start_from' lists more than 5 jobs: keep at most 5 parents")
    unknown = sorted(set(tuning.exclude) - set(SPECS))
    if unknown:
        raise ConfigError(f"settings key 'tuning.exclude' names {unknown[0]!r}, not a hyperparameter: remove it")
    check_space(search_space(settings), tuning.strategy, settings.job_hyperparameters)
    if tuning.strategy == "Hyperband":
        _check_hyperband(settings)


def _check_hyperband(settings: Settings) -> None:
    """SageMaker refuses Hyperband without MaxResource unless a static ``epochs``-like key names it; ours is rounds."""
    tuning = settings.tuning
    if tuning.early_stopping != "Off":
        raise ConfigError("settings key 'tuning.early_stopping' must be \"Off\" with the Hyperband strategy "
                          "(Hyperband stops trials itself): set it to \"Off\"")
    low, high = tuning.hyperband_min_resource, tuning.hyperband_max_resource
    if high is None:
        raise ConfigError("settings key 'tuning.hyperband_max_resource' is required with the Hyperband strategy: set it "
                          "to the most boosting rounds a trial may run (e.g. the job's num_round)")
    if low is not None and low >= high:
        raise ConfigError(f"settings key 'tuning.hyperband_min_resource' ({low}) must be below "
                          f"'tuning.hyperband_max_resource' ({high}): lower it")
    rounds = settings.job_hyperparameters.get("num_round", str(SPECS["num_round"].default))
    if "num_round" not in search_space(settings) and high > int(rounds):
        raise ConfigError(f"settings key 'tuning.hyperband_max_resource' ({high}) is above the job's num_round "
                          f"({rounds}): a trial never runs that many rounds; set it to at most {rounds}")


# ---------------------------------------------------------------------------------------------
# Local mode: the demo job's hyperparameters from --set, with no settings file


LOCAL_SECTIONS = ("hyperparameters", "data")


def local_hyperparameters(overrides: Sequence[str], *, settings_file: bool = False) -> dict[str, str]:
    """Hyperparameters that ``--set`` overrides give a local job: ``hyperparameters.NAME`` and ``data.*``.

    The same keys as in a settings file (``--set`` means one thing in every mode). Without a
    settings file, what a local job cannot use (compute, output, ...) fails in one line rather than
    being ignored; with one (``settings_file``), the other keys are that file's overrides.
    """
    raw: dict[str, Any] = {}
    for override in overrides:
        apply_override(raw, override)
    if settings_file:
        raw = {key: value for key, value in raw.items() if key in LOCAL_SECTIONS}
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
    hyperparameters = _hyperparameters(raw.get("hyperparameters", {}))
    return {**hyperparameters, **{k: hyperparameter_string(v) for k, v in data.items()}}

