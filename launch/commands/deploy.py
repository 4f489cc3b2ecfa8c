"""``python -m launch deploy``: a registered model (or a finished training job's) to a SageMaker endpoint.

    python -m launch deploy --model-name housing --alias champion --dry-run   # print the requests
    python -m launch deploy --model-name housing --alias champion --wait      # real-time, then a smoke call
    python -m launch deploy --training-job xgb-1a2b3c-2026-11-30-10-00-00 --serverless-memory-mb 2048 --wait

A registered version is downloaded from MLflow, tarred as ``model.tar.gz`` and uploaded under the
settings' ``output.s3_path`` (``<s3_path>/<endpoint>-<stamp>/model.tar.gz``, named as the SageMaker model); a training job's
``model.tar.gz`` is used where the job left it. Then CreateModel (our training image, which
SageMaker starts with ``serve``), CreateEndpointConfig and CreateEndpoint (:mod:`launch.endpoints`).
``--wait`` follows the endpoint until it is in service and then invokes it with the rows of the
model's input example (raw table rows, logged by the job) or ``--smoke-csv``.

An endpoint that exists (DescribeEndpoint finds it InService) is updated instead: the new model and
config, then UpdateEndpoint (SageMaker's blue/green swap). With ``--wait``, once it is in service on
the new config and the smoke call answered, the config it ran before and that config's models (read
with DescribeEndpointConfig before anything is sent) are deleted; an update that fails or rolls back
deletes nothing. ``--dry-run`` resolves the source (reads MLflow or DescribeTrainingJob) and reads
the endpoint (DescribeEndpoint, DescribeEndpointConfig), uploads, creates and deletes nothing, and
prints every request it would send, in order, validated by botocore.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from botocore import xform_name
from botocore.exceptions import ClientError

from launch import aws, console, endpoints, follower
from launch.registry import DEFAULT_ALIAS
from launch.settings import Settings, load_settings
from training.contract import MODEL_ARCHIVE
from training.errors import ConfigError, UserError

logger = logging.getLogger(__name__)

RETIRE_WHEN = "with --wait, once the endpoint is InService on the new endpoint config and the smoke call answered"
"""When an update deletes what the endpoint ran before (never while SageMaker may still roll back to it)."""
BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
"""An endpoint's states that end by themselves: wait, then deploy again."""


@dataclass(frozen=True)
class Source:
    """What to deploy: a registered model version, or a training job's model."""

    model_name: str | None = None
    alias: str | None = None
    version: str | None = None
    training_job: str | None = None
    tracking_uri: str = ""

    @property
    def label(self) -> str:
        return self.model_name or "job"


@dataclass(frozen=True)
class DeployOutcome:
    """What ``deploy`` did: the requests (and names), what an update replaces, the endpoint's end when waited
    for (its status and endpoint config), the smoke answer, and whether the replaced config and models are deleted."""

    names: endpoints.Names
    requests: dict[str, dict[str, Any]]
    retire: tuple[tuple[str, dict[str, Any]], ...] = ()
    existing: endpoints.Existing | None = None
    status: str | None = None
    failure_reason: str | None = None
    config_now: str | None = None
    smoke: str | None = None
    retired: bool = False

    @property
    def in_service(self) -> bool:
        """In service on this deploy's endpoint config (an update that rolled back is in service on the old one)."""
        return self.status == "InService" and self.config_now == self.names.config


def deploy(settings: Settings, source: Source, variant: endpoints.Variant, *, endpoint_name: str | None = None,
           dry_run: bool = False, wait: bool = False, smoke_csv: Path | None = None, session: Any = None,
           poll_seconds: float = 30.0, echo: follower.Echo = print, sleep: follower.Sleep = time.sleep) -> DeployOutcome:
    """Deploy ``source`` to an endpoint: create it, or update it when it exists. With ``wait``, follow it to
    InService on the new config, invoke it once and, for an update, delete the config and models it ran before."""
    session = session or aws.boto_session(settings.region)
    names = endpoints.names(settings, endpoint_name, source.label)
    with tempfile.TemporaryDirectory() as tmp:
        version, url = _resolve(settings, source, names, session)  # MLflow first: its errors name their own fix
        sagemaker = session.client("sagemaker")
        existing = _existing(sagemaker, names.endpoint)  # before anything is created: a refused deploy leaves nothing
        requests = endpoints.deploy_requests(settings, names, url, variant, existing)
        retire = tuple(endpoints.retire_requests(existing)) if existing else ()
        outcome = DeployOutcome(names, requests, retire, existing)
        if dry_run:
            return outcome
        model_dir = _upload_version(settings, source, version, url, session, Path(tmp)) if version else None
        sagemaker.create_model(**requests["CreateModel"])
        sagemaker.create_endpoint_config(**requests["CreateEndpointConfig"])
        if existing is None:
            sagemaker.create_endpoint(**requests["CreateEndpoint"])
        else:
            _update(sagemaker, requests["UpdateEndpoint"], names)
        logger.info("%s endpoint %s (model %s)", "updating" if existing else "creating", names.endpoint, names.model)
        if not wait:
            return outcome
        return _follow(session, sagemaker, outcome, model_dir, smoke_csv, echo=echo, poll_seconds=poll_seconds,
                       sleep=sleep)


def _existing(sagemaker: Any, endpoint: str) -> endpoints.Existing | None:
    """The endpoint as it is (None if there is none); one line naming the fix when it cannot be updated now."""
    try:
        desc = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ValidationException" and "Could not find" in str(err):
            return None  # SageMaker's answer for a name it has no endpoint under; another ValidationException is not
        raise
    status = desc["EndpointStatus"]
    if status in BUSY:
        raise ConfigError(f"endpoint {endpoint} is {status}: wait until it is InService (aws sagemaker wait "
                          f"endpoint-in-service --endpoint-name {endpoint}), then deploy again to update it")
    if status not in ("InService", "UpdateRollbackFailed"):  # after a failed rollback, AWS's remedy is an update
        raise ConfigError(f"endpoint {endpoint} is {status} and cannot be updated: delete it first (aws sagemaker "
                          f"delete-endpoint --endpoint-name {endpoint}), or pass --endpoint-name with a new name")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=desc["EndpointConfigName"])
    variants = config["ProductionVariants"] + config.get("ShadowProductionVariants", [])
    models = tuple(dict.fromkeys(v["ModelName"] for v in variants if v.get("ModelName")))
    logger.info("endpoint %s exists (InService on endpoint config %s): this deploy updates it", endpoint,
                config["EndpointConfigName"])
    return endpoints.Existing(status, config["EndpointConfigName"], models)


def _update(sagemaker: Any, request: dict[str, Any], names: endpoints.Names) -> None:
    """UpdateEndpoint; if SageMaker refuses it, the model and config just made for it are deleted again."""
    try:
        sagemaker.update_endpoint(**request)
    except ClientError:
        sagemaker.delete_endpoint_config(EndpointConfigName=names.config)
        sagemaker.delete_model(ModelName=names.model)
        raise


def _follow(session: Any, sagemaker: Any, outcome: DeployOutcome, model_dir: Path | None, smoke_csv: Path | None,
            *, echo: follower.Echo, poll_seconds: float, sleep: follower.Sleep) -> DeployOutcome:
    """Follow the endpoint to its end; in service on the new config: the smoke call, then (an update) the clean-up."""
    names, existing = outcome.names, outcome.existing
    echo(f"following endpoint {names.endpoint} until it is in service (Ctrl-C stops following, not the endpoint)")
    back = _way_back(names.endpoint, existing, sagemaker.meta.region_name) if existing else ""
    desc = follower.follow_endpoint(sagemaker, names.endpoint, echo=echo, poll_seconds=poll_seconds, sleep=sleep,
                                    stop_command=back)
    ended = replace(outcome, status=desc["EndpointStatus"], failure_reason=desc.get("FailureReason"),
                    config_now=desc.get("EndpointConfigName"))
    if not ended.in_service:
        return ended  # an update that failed or rolled back keeps what the endpoint ran before
    body, content_type = _smoke_rows(model_dir, smoke_csv)
    try:
        smoke = _invoke(session, names.endpoint, body, content_type) if body else None
    except ClientError as err:
        if existing is None:
            raise
        raise UserError(f"the smoke call to endpoint {names.endpoint}, now on endpoint config {names.config}, failed "
                        f"({' '.join(str(err).split())[:300]}): the previous config {existing.config} and its model "
                        f"are kept; to go back: {back}") from err
    if existing is not None:
        _retire(sagemaker, outcome.retire, names.endpoint)
    return replace(ended, smoke=smoke, retired=existing is not None)


def _way_back(endpoint: str, existing: endpoints.Existing, region: str) -> str:
    return (f"aws sagemaker update-endpoint --endpoint-name {endpoint} --endpoint-config-name {existing.config} "
            f"--region {region}")


def _retire(sagemaker: Any, requests: tuple[tuple[str, dict[str, Any]], ...], endpoint: str) -> None:
    """Delete the endpoint config and the models the endpoint ran before; one line naming what is left if one fails."""
    for done, (operation, params) in enumerate(requests):
        try:
            if operation == "DeleteEndpointConfig":
                sagemaker.delete_endpoint_config(**params)
            else:
                sagemaker.delete_model(**params)
        except ClientError as err:
            left = "; ".join(_cli(op, p) for op, p in requests[done:])
            raise UserError(f"endpoint {endpoint} runs its new endpoint config, but {operation} failed "
                            f"({' '.join(str(err).split())[:300]}): delete what it ran before yourself: {left}") from err
        logger.info("deleted the superseded %s", _label(operation, params))


def _label(operation: str, params: dict[str, Any]) -> str:
    """``DeleteModel`` of M -> ``model M``; ``DeleteEndpointConfig`` of C -> ``endpoint config C``."""
    return f"{xform_name(operation.removeprefix('Delete'), ' ')} {' '.join(map(str, params.values()))}"


def _cli(operation: str, params: dict[str, Any]) -> str:
    """The AWS CLI command that sends one request (``DeleteModel`` -> ``aws sagemaker delete-model --model-name M``)."""
    flags = " ".join(f"--{xform_name(key, '-')} {value}" for key, value in params.items())
    return f"aws sagemaker {xform_name(operation, '-')} {flags}"


def _resolve(settings: Settings, source: Source, names: endpoints.Names, session: Any) -> tuple[str | None, str]:
    """The registered version (None for a training job's model) and the ``model.tar.gz`` URL."""
    if source.training_job:
        return None, aws.job_model_url(session.client("sagemaker"), source.training_job, "deploy",
                                           "a registered model (--model-name)")
    from launch import registry

    assert source.model_name is not None
    version = registry.model_version(source.tracking_uri, source.model_name, alias=source.alias, version=source.version)
    url = f"{settings.output.s3_path.rstrip('/')}/{names.model}/{MODEL_ARCHIVE}"
    echo_source = f"{source.model_name} version {version}" + (f" (@{source.alias})" if source.version is None else "")
    logger.info("deploying registered model %s from %s", echo_source, url)
    return version, url


def _upload_version(settings: Settings, source: Source, version: str, url: str, session: Any, tmp: Path) -> Path:
    """Download the registered version, tar it and upload it to ``url``; its directory (for the input example)."""
    from launch import registry

    assert source.model_name is not None
    model_dir = registry.download_version(source.tracking_uri, source.model_name, version, tmp / "model")
    aws.upload_model(session, model_dir, url, settings.kms.output_key_id, tmp / MODEL_ARCHIVE)
    return model_dir


def _smoke_rows(model_dir: Path | None, smoke_csv: Path | None) -> tuple[bytes | None, str]:
    """The smoke call's body: ``--smoke-csv`` as it is, else the MLflow model's input example (raw rows)."""
    if smoke_csv is not None:
        return smoke_csv.read_bytes(), "text/csv"
    if model_dir is None:
        return None, ""
    from mlflow.models import Model

    example = Model.load(str(model_dir)).load_input_example(str(model_dir))
    if example is None:
        return None, ""
    split = json.loads(example.to_json(orient="split", index=False, date_format="iso"))
    return json.dumps({"dataframe_split": split}).encode(), "application/json"


def _invoke(session: Any, endpoint: str, body: bytes, content_type: str) -> str:
    response = session.client("sagemaker-runtime").invoke_endpoint(EndpointName=endpoint, ContentType=content_type,
                                                                   Accept="application/json", Body=body)
    return response["Body"].read().decode()


# ---------------------------------------------------------------------------------------------
# CLI


def command_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``deploy``'s flags: a subparser of ``python -m launch``."""
    description = ("Deploy a registered MLflow model version (or a finished training job's model) to a SageMaker "
                   "real-time or serverless endpoint that scores raw table rows.")
    p = subparsers.add_parser("deploy", help="deploy a registered model (or a training job's) to an endpoint",
                              description=description)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model-name", help="registered model to deploy (with --alias or --version)")
    which.add_argument("--training-job", help="a Completed training job whose model to deploy")
    version = p.add_mutually_exclusive_group()
    version.add_argument("--alias", help=f"the alias's version (default {DEFAULT_ALIAS})")
    version.add_argument("--version", help="this version number")
    console.add_tracking_argument(p)
    p.add_argument("--endpoint-name", help="endpoint name, under job_prefix (default <job_prefix>-<model name>)")
    hosting = p.add_argument_group("where it runs (default: real-time, 1 x ml.m5.large)")
    hosting.add_argument("--instance-type", default=endpoints.Variant.instance_type, help="real-time instance type")
    hosting.add_argument("--instance-count", type=int, default=endpoints.Variant.instance_count)
    hosting.add_argument("--serverless-memory-mb", type=int, choices=endpoints.SERVERLESS_MEMORY_MB,
                         help="serverless instead of instances, with this much memory")
    hosting.add_argument("--max-concurrency", type=int, default=endpoints.Variant.max_concurrency,
                         help="serverless: invocations at once (default 5)")
    p.add_argument("--dry-run", action="store_true", help="print the requests in the order they would be sent "
                   "(CreateModel, CreateEndpointConfig, then CreateEndpoint, or UpdateEndpoint and the deletes of what "
                   "an existing endpoint ran before); read the endpoint, upload, create and delete nothing")
    p.add_argument("--wait", action="store_true", help="follow the endpoint until it is in service, then invoke it "
                   "with the model's input example (or --smoke-csv); an updated endpoint's previous config and models "
                   "are deleted then")
    p.add_argument("--smoke-csv", type=Path, help="CSV (a header row, then table rows) for the smoke call after --wait")
    console.add_settings_arguments(p)
    p.set_defaults(func=deploy_command)
    return p


def deploy_command(args: argparse.Namespace, session: Any = None) -> int:
    console.configure_logging(args.verbose)
    if args.training_job and (args.alias or args.version):
        raise ConfigError("--alias and --version pick a registered model's version: use them with --model-name, not "
                          "--training-job")
    settings = load_settings(args.settings, args.set, sign_in=False)  # an endpoint never reads the table
    source = Source(training_job=args.training_job) if args.training_job else Source(
        model_name=args.model_name, alias=None if args.version else (args.alias or DEFAULT_ALIAS),
        version=args.version, tracking_uri=console.tracking_location(args)[0])
    variant = endpoints.Variant(instance_type=args.instance_type, instance_count=args.instance_count,
                                serverless_memory_mb=args.serverless_memory_mb, max_concurrency=args.max_concurrency)
    done = deploy(settings, source, variant, endpoint_name=args.endpoint_name, dry_run=args.dry_run, wait=args.wait,
                  smoke_csv=args.smoke_csv, session=session)
    if args.dry_run:
        print(json.dumps(_in_order(done), indent=2))
        return 0
    old = done.existing
    print(f"endpoint: {done.names.endpoint} (model {done.names.model})"
          + (f", updating from endpoint config {old.config}" if old else ""))
    if done.status is None:
        if old:
            print(f"{_listed(done.retire)} stay until the update is in service; then delete them: "
                  f"{'; '.join(_cli(op, params) for op, params in done.retire)} (deploy --wait deletes them itself)")
        return 0
    print(f"status: {done.status}")
    if not done.in_service:
        raise UserError(_not_in_service(done))
    if done.smoke is None:
        print("no smoke rows (a training job's model carries no input example): pass --smoke-csv FILE to invoke it")
    else:
        print(f"smoke invocation: {done.smoke}")
    if done.retired:
        print(f"deleted what the endpoint ran before: {_listed(done.retire)}")
    return 0


def _in_order(done: DeployOutcome) -> list[dict[str, Any]]:
    """What ``--dry-run`` prints: each request in the order it would be sent, and when, if not at once."""
    steps: list[dict[str, Any]] = [{"operation": op, "request": params} for op, params in done.requests.items()]
    return steps + [{"operation": op, "request": params, "when": RETIRE_WHEN} for op, params in done.retire]


def _listed(requests: tuple[tuple[str, dict[str, Any]], ...]) -> str:
    return ", ".join(_label(op, params) for op, params in requests)


def _not_in_service(done: DeployOutcome) -> str:
    reason = done.failure_reason or "no reason given"
    if done.existing is None:
        return f"endpoint {done.names.endpoint} {done.status}: {reason}"
    return (f"endpoint {done.names.endpoint} did not move to endpoint config {done.names.config}: it is {done.status} "
            f"on {done.config_now} ({reason}); nothing was deleted, {_listed(done.retire)} are kept")
