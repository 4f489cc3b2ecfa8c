"""Offline: deploy's requests pass botocore's own validation and carry the settings (image,
role, VPC, isolation, volume key, tags); names stay under the job prefix; bad flags fail in one line."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from launch import endpoints
from launch.endpoints import Variant
from launch.settings import settings_from_dict
from training.errors import ConfigError

BASE: dict[str, Any] = {
    "region": "us-west-2", "role": "arn:aws:iam::123456789012:role/Training",
    "image": "123456789012.dkr.ecr.us-west-2.amazonaws.com/xgb:1", "job_prefix": "xgb-test",
    "data": {"table": "T", "target": "Y", "snowflake_secret_id": "sf"}, "output": {"s3_path": "s3://bucket/out"},
}
FULL = {**BASE, "network": {"subnets": ["subnet-1"], "security_group_ids": ["sg-1"], "network_isolation": True},
        "kms": {"volume_key_id": "vol-key", "output_key_id": "out-key"}, "tags": {"team": "ml"}}
URL = "s3://bucket/out/xgb-test-housing-261130100000/model.tar.gz"
NOW = datetime(2026, 11, 30, 10, 0, 0, tzinfo=timezone.utc)


def _requests(raw: dict[str, Any], variant: Variant) -> dict[str, dict[str, Any]]:
    settings = settings_from_dict(raw)
    return endpoints.deploy_requests(settings, endpoints.names(settings, None, "housing", NOW), URL, variant)


def test_real_time_requests_are_valid_and_carry_the_settings() -> None:
    requests = _requests(FULL, Variant(instance_type="ml.c5.xlarge", instance_count=2))
    model, config, endpoint = requests["CreateModel"], requests["CreateEndpointConfig"], requests["CreateEndpoint"]
    assert list(requests) == ["CreateModel", "CreateEndpointConfig", "CreateEndpoint"]  # the order they are sent
    assert model == {
        "ModelName": "xgb-test-housing-261130100000", "ExecutionRoleArn": FULL["role"],
        "PrimaryContainer": {"Image": FULL["image"], "Mode": "SingleModel", "ModelDataUrl": URL},
        "VpcConfig": {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}, "EnableNetworkIsolation": True,
        "Tags": [{"Key": "team", "Value": "ml"}]}
    assert config["ProductionVariants"] == [{"VariantName": "AllTraffic", "ModelName": model["ModelName"],
                                             "InstanceType": "ml.c5.xlarge", "InitialInstanceCount": 2,
                                             "InitialVariantWeight": 1.0}]
    assert config["KmsKeyId"] == "vol-key"
    assert endpoint == {"EndpointName": "xgb-test-housing", "EndpointConfigName": config["EndpointConfigName"],
                        "Tags": [{"Key": "team", "Value": "ml"}]}


def test_serverless_takes_memory_and_concurrency_and_no_key() -> None:
    keyed = {**BASE, "kms": FULL["kms"], "tags": FULL["tags"]}
    config = _requests(keyed, Variant(serverless_memory_mb=3072, max_concurrency=20))["CreateEndpointConfig"]
    (variant,) = config["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 3072, "MaxConcurrency": 20}
    assert "InstanceType" not in variant and "KmsKeyId" not in config


def test_serverless_with_the_settings_network_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ConfigError, match="serverless endpoints take no VPC and no network isolation"):
        _requests(FULL, Variant(serverless_memory_mb=3072))


def test_plain_settings_send_no_vpc_isolation_key_or_tags() -> None:
    requests = _requests(BASE, Variant())
    assert set(requests["CreateModel"]) == {"ModelName", "ExecutionRoleArn", "PrimaryContainer"}
    assert set(requests["CreateEndpointConfig"]) == {"EndpointConfigName", "ProductionVariants"}


def test_names_stay_under_the_prefix_and_within_63_characters() -> None:
    settings = settings_from_dict(BASE)
    long = endpoints.names(settings, None, "a-very-long_registered.model name " * 3, NOW)
    assert long.endpoint.startswith("xgb-test-") and len(long.endpoint) <= 63 and "--" not in long.endpoint
    assert len(long.model) <= 63 and long.model.endswith("-261130100000")
    with pytest.raises(ConfigError, match="does not start with job_prefix 'xgb-test-'"):
        endpoints.names(settings, "prod-endpoint", "housing", NOW)


def test_every_hosting_instance_type_sagemaker_lists_is_accepted() -> None:
    _requests(BASE, Variant(instance_type="ml.inf2.xlarge"))  # hosting only: not a training type


@pytest.mark.parametrize(("variant", "says"), [
    (Variant(serverless_memory_mb=1500), "--serverless-memory-mb 1500 is not a size SageMaker offers"),
    (Variant(serverless_memory_mb=2048, max_concurrency=0), "--max-concurrency 0 must be in"),
    (Variant(instance_count=0), "at least 1 instance"),
    # hosting types from botocore's enum: a training-only type is refused with the nearest hosting ones
    (Variant(instance_type="ml.m7i-flex.large"), r"--instance-type is 'ml.m7i-flex.large', which is not a SageMaker "
                                                 r"hosting instance type \(did you mean"),
    (Variant(instance_type="ml.m5.3xlarge"), "not a SageMaker hosting instance type"),
])
def test_a_bad_variant_fails_in_one_line(variant: Variant, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        _requests(BASE, variant)


def test_a_request_botocore_refuses_fails_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^CreateModel would be refused: .*ModelName.*PrimaryContaine") as err:
        endpoints.validate("CreateModel", {"ModelName": 5, "PrimaryContainer": {"Imag": "x"}})
    assert "\n" not in str(err.value)
