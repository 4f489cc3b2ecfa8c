"""Pure builders for ``deploy``: settings + a model artifact -> CreateModel, CreateEndpointConfig and
CreateEndpoint requests (UpdateEndpoint when the endpoint exists, then DeleteEndpointConfig and
DeleteModel of what it ran before), validated against botocore's own service model. Nothing here
talks to AWS.

The endpoint runs the training image itself: SageMaker starts it with ``serve`` and it answers the
hosting contract with the job's own coding of raw rows (``container/serve.py``,
``training/model/scoring.py``). Hence one image to build and push, and a row scores the same in the
job, in MLflow and behind the endpoint. Not the built-in XGBoost serving image: it loads our model
file but takes numbers only (text columns would need the caller to code them). Not
``mlflow sagemaker build-and-push-container``: a second image, and MLflow's scoring server rejects
a NULL in a boolean CSV column and mixed datetime formats (``training/model/scoring.py``).

Names: the model and the endpoint config are ``<endpoint>-<yymmddHHMMSS>`` (a new pair per
deploy), the endpoint ``<job_prefix>-...`` (the launcher's IAM policy grants names under the
prefix only). An existing endpoint is updated to the new pair (UpdateEndpoint: SageMaker's
blue/green swap, no downtime); the pair it ran before is deleted once the new one is in service.
The settings' network (VPC, isolation: the server needs no network), volume KMS key (real-time
only: serverless endpoints take none) and tags apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from launch import service_model
from launch.settings import Settings, check_under_prefix
from training.errors import ConfigError

NAME_MAX = 63
"""SageMaker's limit for model, endpoint config and endpoint names."""
VARIANT = "AllTraffic"
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
"""The memory sizes a serverless endpoint accepts (https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html)."""
SERVERLESS_CONCURRENCY_MAX = 200


@dataclass(frozen=True)
class Variant:
    """Where the model runs: instances (real-time), or serverless when ``serverless_memory_mb`` is set."""

    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    serverless_memory_mb: int | None = None
    max_concurrency: int = 5

    def check(self) -> None:
        if self.serverless_memory_mb is not None:
            if self.serverless_memory_mb not in SERVERLESS_MEMORY_MB:
                raise ConfigError(f"--serverless-memory-mb {self.serverless_memory_mb} is not a size SageMaker offers: "
                                  f"use one of {', '.join(map(str, SERVERLESS_MEMORY_MB))}")
            if not 1 <= self.max_concurrency <= SERVERLESS_CONCURRENCY_MAX:
                raise ConfigError(f"--max-concurrency {self.max_concurrency} must be in [1, "
                                  f"{SERVERLESS_CONCURRENCY_MAX}]: fix it")
        else:
            problem = service_model.unknown_instance_type("--instance-type", self.instance_type,
                                                          service_model.HOSTING_INSTANCE_TYPE)
            if problem:
                raise ConfigError(problem)
            if self.instance_count < 1:
                raise ConfigError(f"--instance-count {self.instance_count}: give at least 1 instance")


@dataclass(frozen=True)
class Names:
    """The three resources one deploy creates (or, for an existing endpoint, the two and the endpoint it updates)."""

    endpoint: str
    model: str
    config: str


@dataclass(frozen=True)
class Existing:
    """The endpoint of that name as it is before the deploy: its status, its endpoint config and that config's models."""

    status: str
    config: str
    models: tuple[str, ...]


def names(settings: Settings, endpoint: str | None, label: str, now: datetime | None = None) -> Names:
    """``endpoint`` (default ``<job_prefix>-<label>``) and a model/config pair stamped to the second."""
    endpoint = endpoint or _clean(f"{settings.job_prefix}-{label}")[:NAME_MAX]
    check_under_prefix("--endpoint-name", endpoint, settings.job_prefix)
    if len(endpoint) > NAME_MAX:
        raise ConfigError(f"--endpoint-name {endpoint!r} is over {NAME_MAX} characters: shorten it")
    stamp = (now or datetime.now(timezone.utc)).strftime("%y%m%d%H%M%S")
    versioned = f"{endpoint[:NAME_MAX - len(stamp) - 1].rstrip('-')}-{stamp}"
    return Names(endpoint=endpoint, model=versioned, config=versioned)


def _clean(text: str) -> str:
    """A name SageMaker accepts: letters, digits and single dashes."""
    out = "".join(c if c.isalnum() else "-" for c in text)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")


def model_request(settings: Settings, name: str, model_data_url: str) -> dict[str, Any]:
    """CreateModel: our image (started with ``serve``) over ``model_data_url`` (a model.tar.gz)."""
    request: dict[str, Any] = {
        "ModelName": name,
        "ExecutionRoleArn": settings.role,
        "PrimaryContainer": {"Image": settings.image, "Mode": "SingleModel", "ModelDataUrl": model_data_url},
    }
    network = settings.network
    if network.subnets:
        request["VpcConfig"] = {"Subnets": list(network.subnets), "SecurityGroupIds": list(network.security_group_ids)}
    if network.network_isolation:
        request["EnableNetworkIsolation"] = True
    return _tagged(settings, request)


def endpoint_config_request(settings: Settings, name: str, model_name: str, variant: Variant) -> dict[str, Any]:
    """CreateEndpointConfig: one variant, real-time or serverless."""
    production: dict[str, Any] = {"VariantName": VARIANT, "ModelName": model_name}
    request: dict[str, Any] = {"EndpointConfigName": name, "ProductionVariants": [production]}
    if variant.serverless_memory_mb is not None:
        production["ServerlessConfig"] = {"MemorySizeInMB": variant.serverless_memory_mb,
                                          "MaxConcurrency": variant.max_concurrency}
    else:
        production.update(InstanceType=variant.instance_type, InitialInstanceCount=variant.instance_count,
                          InitialVariantWeight=1.0)
        if settings.kms.volume_key_id:  # the hosts' storage volume; serverless endpoints refuse a key
            request["KmsKeyId"] = settings.kms.volume_key_id
    return _tagged(settings, request)


def endpoint_request(settings: Settings, name: str, config_name: str) -> dict[str, Any]:
    return _tagged(settings, {"EndpointName": name, "EndpointConfigName": config_name})


def update_request(name: str, config_name: str) -> dict[str, Any]:
    """UpdateEndpoint: the endpoint to its new config (it keeps its own tags; the request takes none)."""
    return {"EndpointName": name, "EndpointConfigName": config_name}


def retire_requests(existing: Existing) -> list[tuple[str, dict[str, Any]]]:
    """What an update leaves behind, to delete once the new config is in service: the old config, then its models."""
    requests = [("DeleteEndpointConfig", {"EndpointConfigName": existing.config})]
    requests += [("DeleteModel", {"ModelName": model}) for model in existing.models]
    for operation, params in requests:
        validate(operation, params)
    return requests


def deploy_requests(settings: Settings, names: Names, model_data_url: str, variant: Variant,
                    existing: Existing | None = None) -> dict[str, dict[str, Any]]:
    """The requests that create or update the endpoint, in the order they are sent, each validated against
    botocore's service model: CreateModel, CreateEndpointConfig, then CreateEndpoint, or UpdateEndpoint when
    the endpoint exists."""
    variant.check()
    network = settings.network
    if variant.serverless_memory_mb is not None and (network.subnets or network.network_isolation):
        raise ConfigError("serverless endpoints take no VPC and no network isolation, and the settings' [network] "
                          "section sets them: deploy real-time (--instance-type), or deploy from settings without "
                          "[network]")
    requests = {
        "CreateModel": model_request(settings, names.model, model_data_url),
        "CreateEndpointConfig": endpoint_config_request(settings, names.config, names.model, variant),
    }
    if existing is None:
        requests["CreateEndpoint"] = endpoint_request(settings, names.endpoint, names.config)
    else:
        requests["UpdateEndpoint"] = update_request(names.endpoint, names.config)
    for operation, params in requests.items():
        validate(operation, params)
    return requests


def validate(operation: str, params: dict[str, Any]) -> None:
    """botocore's own check of a SageMaker request (what it runs before sending); one line if it fails."""
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("sagemaker")
    report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
    if report.has_errors():
        raise ConfigError(f"{operation} would be refused: {' '.join(report.generate_report().split())}")


def _tagged(settings: Settings, request: dict[str, Any]) -> dict[str, Any]:
    if settings.tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in settings.tags.items()]
    return request
