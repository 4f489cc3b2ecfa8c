"""Settings: the example loads, overrides apply, and every bad value is named with its fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from launch.settings import EXAMPLE, load_settings
from launch.tuning_space import default_space, pinned_note, search_space
from training.errors import ConfigError

MINIMAL = """
region = "us-west-2"
role = "arn:aws:iam::123456789012:role/Training"
image = "123456789012.dkr.ecr.us-west-2.amazonaws.com/xgb:1"
[data]
table = "DB.S.T"
target = "Y"
snowflake_secret_id = "snowflake/xgb"
[output]
s3_path = "s3://bucket/out"
"""


def write(tmp_path: Path, text: str = MINIMAL) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, *overrides: str, text: str = MINIMAL) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), overrides)
    return str(info.value)


def test_example_loads_and_overrides_apply() -> None:
    settings = load_settings(EXAMPLE, ["compute.instance_count=4", "hyperparameters.eta=0.05",
                                       "network.subnets=subnet-1,subnet-2", "network.security_group_ids=['sg-1']"])
    assert settings.compute.instance_count == 4
    assert settings.hyperparameters["eta"] == "0.05"
    assert settings.network.subnets == ("subnet-1", "subnet-2")
    assert settings.job_hyperparameters["table"] == "ANALYTICS.PUBLIC.CALIFORNIA_HOUSING"
    assert settings.eval_metrics == ["rmse", "mae"]


def test_minimal_settings_take_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path))
    assert settings.compute.instance_count == 1 and not settings.compute.spot
    assert settings.job_hyperparameters == {"table": "DB.S.T", "target": "Y"}
    assert set(search_space(settings)) == set(default_space())


def test_a_set_hyperparameter_is_not_tuned_and_the_tuner_says_so(tmp_path: Path) -> None:
    """One rule on AWS and locally: a value in [hyperparameters] (or --set) wins over the default range."""
    settings = load_settings(write(tmp_path), ["hyperparameters.eta=0.1", "hyperparameters.num_round=40",
                                               "tuning.ranges.eta={low=0.01, high=0.3}"])
    space = search_space(settings)
    assert "eta" not in space and "num_round" not in space and "max_depth" in space
    note = pinned_note(settings.tuning.ranges, settings.hyperparameters)
    assert note is not None and note.startswith("not tuned, set in [hyperparameters] or by --set: ")
    assert "eta=0.1" in note and "num_round=40" in note and "\n" not in note
    assert pinned_note({}, {"table": "T"}) is None


def test_missing_settings_file_names_the_example(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="settings.example.toml to launch/settings.toml"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize(("overrides", "text", "expected"), [
    ((), MINIMAL.replace('role = "arn:aws:iam::123456789012:role/Training"\n', ""), "'role'.*is missing"),
    (("role=MyRole",), MINIMAL, "'role' must be an IAM role ARN.*got 'MyRole'"),
    (("compute.spot=true",), MINIMAL, "'compute.spot' is true but 'compute.max_wait_seconds' is not set"),
    (("compute.spot=true", "compute.max_wait_seconds=60"), MINIMAL, "max_wait_seconds' \\(60\\) must be >="),
    (("network.subnets=['subnet-1']",), MINIMAL, "'network.subnets' is set but 'network.security_group_ids'"),
    (("compute.instnce_type=ml.m5.large",), MINIMAL, "unknown settings key 'compute.instnce_type' given by --set.*"
                                                     "compute.instance_type"),
    (("compute.instance_count='two'",), MINIMAL, "'compute.instance_count' must be an integer, got 'two'"),
    (("compute.instance_count=0",), MINIMAL, "'compute.instance_count' must be an integer in \\[1, 100\\]"),
    (("hyperparameters.eta=2",), MINIMAL, "hyperparameter 'eta' must be a number in \\(0, 1\\]"),
    (("hyperparameters.etaa=0.1",), MINIMAL, "unknown hyperparameter 'etaa'"),
    (("hyperparameters.table=X",), MINIMAL, "'hyperparameters.table' is not allowed: set data.table"),
    (("data.snowflake_secret_id={\"password\": \"x\"}",), MINIMAL, "never the secret's value"),
    (("tuning.strategy=Grid",), MINIMAL, "categorical ranges only"),
    (("tuning.strategy=Bayes",), MINIMAL, "'tuning.strategy' must be one of Bayesian, Random"),
    (("tuning.ranges.eta={low=0, high=0.3, scaling='Logarithmic'}",), MINIMAL, "hyperparameter 'eta' must be"),
    (("tuning.ranges.nope={low=1, high=2}",), MINIMAL, "'nope' is not a hyperparameter"),
    (("output.s3_path=bucket/out",), MINIMAL, "'output.s3_path' must be"),
    (("data.snowflake_connection={account='a', warehouse='W', database='D', schema='S', role='R'}",), MINIMAL,
     "one way to sign in to Snowflake: data.snowflake_secret_id .* or \\[data.snowflake_connection\\].*, not both"),
    (("data.snowflake_connection={account='a', warehouse='W', database='D', schema='S', role='R', password='pw'}",),
     MINIMAL, "SNOWFLAKE_CONNECTION holds a 'password' field: a secret never goes in the job's environment"),
    (("region=eu-west-1",), MINIMAL, "'image' is in ECR region 'us-west-2' but 'region' is 'eu-west-1'.*"
                                     "make build-push REGION=eu-west-1"),
    (("image=123456789012.dkr.ecr.us-west-2.amazonaws.com",), MINIMAL, "not a complete ECR image URI"),
    (("data.features=[" + ",".join(f"'COLUMN_WITH_A_LONG_NAME_{i:03d}'" for i in range(120)) + "]",), MINIMAL,
     "hyperparameter 'features' is 3,359 characters, and SageMaker accepts at most 2,500 per value: leave "
     "data.features empty"),
    (("tuning.strategy=Hyperband", "tuning.early_stopping=Off"), MINIMAL,
     "'tuning.hyperband_max_resource' is required with the Hyperband strategy"),
    (("tuning.strategy=Hyperband", "tuning.early_stopping=Off", "tuning.hyperband_max_resource=50",
      "tuning.hyperband_min_resource=50"), MINIMAL, "'tuning.hyperband_min_resource' \\(50\\) must be below"),
    (("tuning.strategy=Hyperband", "tuning.early_stopping=Off", "tuning.hyperband_max_resource=500",
      "hyperparameters.num_round=100", "tuning.exclude=['num_round']"), MINIMAL,
     "above the job's num_round \\(100\\).*at most 100"),
    (("tuning.ranges.eta={low=0.01, high=1.0, scaling='ReverseLogarithmic'}",), MINIMAL,
     "ReverseLogarithmic scaling works only on a continuous range within \\[0, 1\\)"),
    (("tuning.ranges.max_depth={low=2, high=8, scaling='ReverseLogarithmic'}",), MINIMAL,
     "ReverseLogarithmic scaling works only on a continuous range"),
    # what SageMaker would refuse after the launch, refused before it (botocore's model of the service)
    (("compute.instance_type=ml.m5.3xlarge",), MINIMAL,
     "'compute.instance_type' is 'ml.m5.3xlarge', which is not a SageMaker training instance type \\(did you "
     "mean ml.m5.xlarge or ml.m5.4xlarge or ml.m5.2xlarge\\?\\); the list is botocore"),
    (("hyperparameters.eval_metric='" + ",".join(["rmse", "mae", "mape", "rmsle", "mphe"] * 4) + ",rmse'",), MINIMAL,
     "eval_metric lists 21 metrics, which make 42 metric definitions .* at most 40: list at most 20"),
    (("compute.keep_alive_seconds=21601",), MINIMAL, "'compute.keep_alive_seconds' must be an integer in \\[0, 21600\\]"),
    (("tuning.stop_after_not_improving=2",), MINIMAL, "'tuning.stop_after_not_improving' must be an integer in "
                                                    "\\[3, inf\\]"),
])
def test_bad_settings_are_named_with_the_fix(tmp_path: Path, overrides: tuple[str, ...], text: str,
                                             expected: str) -> None:
    message = error_of(tmp_path, *overrides, text=text)
    assert "\n" not in message
    assert re.search(expected, message), message


def test_every_instance_type_sagemaker_lists_for_training_is_accepted(tmp_path: Path) -> None:
    """From botocore's enum, not a pattern: a type with a dash in its family (ml.m7i-flex.large) passes."""
    assert load_settings(write(tmp_path), ["compute.instance_type=ml.m7i-flex.large"]).compute.instance_type == \
        "ml.m7i-flex.large"


@pytest.mark.parametrize(("overrides", "expected"), [
    # settings that pass every type check and would fail on AWS or against the IAM policies (iam/)
    (("mlflow.tracking_uri=sqlite:////tmp/mlflow.db",), "'mlflow.tracking_uri' is a store on the job's own disk "
                                                       "\\(sqlite\\).*an http\\(s\\):// MLflow server"),
    (("mlflow.tracking_uri=file:///tmp/mlruns",), "'mlflow.tracking_uri' is a store on the job's own disk \\(file\\)"),
    (("data.snowflake_secret_id=arn:aws:secretsmanager:eu-west-1:123456789012:secret:sf-AbC",),
     "a secret in region 'eu-west-1' but the job runs in 'us-west-2'"),
    (("output.checkpoint_s3_uri=s3://other-bucket/ckpt",),
     "'output.checkpoint_s3_uri' is in bucket 'other-bucket' but output.s3_path in 'bucket'"),
    (("compute.spot=true", "compute.max_wait_seconds=86400", "compute.keep_alive_seconds=600"),
     "'compute.keep_alive_seconds' keeps a warm pool, which SageMaker does not offer with managed spot training"),
    (("kms.output_key_id=alias/ml-output",), "'kms.output_key_id' is an alias \\(alias/ml-output\\): the IAM policies "
                                            "grant KMS keys by id"),
    (("kms.volume_key_id=arn:aws:kms:us-west-2:123456789012:alias/vol",), "'kms.volume_key_id' is an alias"),
    (("job_prefix=XGB-housing",), "'job_prefix' is 'XGB-housing': use lowercase \\('xgb-housing'\\)"),
    # the job environment a user sets, read by the container's own parsers; a value is never repeated
    (("environment.SNOWFLAKE_LOGIN_TIMEOUT='soon'",), "settings \\[environment\\]: SNOWFLAKE_LOGIN_TIMEOUT is not a whole "
                                                    "number of seconds"),
    (("environment.MLFLOW_REQUIRED='maybe'",), "settings \\[environment\\]: MLFLOW_REQUIRED is not a boolean"),
    (("environment.SPILL_DIR='spill'",), "SPILL_DIR is not an absolute path"),
    (("environment.SPIL_DIR='/x'",), "\\[environment\\] key 'SPIL_DIR' is not a variable the job reads: use one of "
                                    "MLFLOW_REQUIRED, SNOWFLAKE_LOGIN_TIMEOUT"),
    # where an error is reported: the key as written, and whether --set gave it
    (("data.table='DB.S.T x'",), "settings key 'data.table' \\(--set data.table\\): table 'DB.S.T x' is not a valid"),
    (("compute.instnce_type=ml.m5.large",), "unknown settings key 'compute.instnce_type' given by --set"),
    (("hyperparameters.eta=5",), "settings \\[hyperparameters\\] \\(--set hyperparameters.eta\\): hyperparameter 'eta'"),
])
def test_what_aws_would_refuse_is_refused_at_launch(tmp_path: Path, overrides: tuple[str, ...], expected: str) -> None:
    message = error_of(tmp_path, *overrides)
    assert "\n" not in message
    assert re.search(expected, message), message


def test_a_credential_in_the_job_environment_is_refused_without_its_value(tmp_path: Path) -> None:
    message = error_of(tmp_path, "environment.SNOWFLAKE_PASSWORD='hunter2-secret'")
    assert "'SNOWFLAKE_PASSWORD', which looks like a credential" in message
    assert "hunter2" not in message
    pasted = error_of(tmp_path, "environment.SNOWFLAKE_NETWORK_TIMEOUT='hunter2-secret'")  # in the wrong variable
    assert "SNOWFLAKE_NETWORK_TIMEOUT is not a whole number" in pasted and "hunter2" not in pasted


@pytest.mark.parametrize("overrides", [
    ("output.s3_path=s3://bucket/xgb-housing/project-a/output", "output.checkpoint_s3_uri=s3://bucket/xgb-housing/ckpt"),
    ("mlflow.tracking_uri=databricks",),  # a remote store named without ://
    ("mlflow.tracking_uri=https://mlflow.example.com/team/",),
    ("kms.output_key_id=mrk-1234abcd12ab34cd56ef1234567890ab",),  # a multi-region key id
    ("compute.keep_alive_seconds=1800",),
])
def test_valid_aws_settings_pass(tmp_path: Path, overrides: tuple[str, ...]) -> None:
    load_settings(write(tmp_path), overrides)


def test_a_local_run_skips_what_only_aws_reads(tmp_path: Path) -> None:
    """--local --data reads no secret and names no job on AWS: a secret in another region does not stop it."""
    load_settings(write(tmp_path), ["data.snowflake_secret_id=arn:aws:secretsmanager:eu-west-1:123456789012:secret:x",
                                    "job_prefix=XGB"], local=True)


def test_the_job_environment_and_the_image_reach_the_job(tmp_path: Path) -> None:
    from launch import jobs

    settings = load_settings(write(tmp_path), ["environment.MLFLOW_REQUIRED=false",
                                               "environment.SNOWFLAKE_LOGIN_TIMEOUT=120"])
    env = jobs.environment(settings)
    assert env["MLFLOW_REQUIRED"] == "false" and env["SNOWFLAKE_LOGIN_TIMEOUT"] == "120"
    assert env["IMAGE_URI"] == "123456789012.dkr.ecr.us-west-2.amazonaws.com/xgb:1"  # the run's Source and image tag


def test_a_local_run_may_keep_a_sqlite_tracking_uri(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path), ["mlflow.tracking_uri=sqlite:////tmp/mlflow.db"], local=True)
    assert settings.mlflow.tracking_uri == "sqlite:////tmp/mlflow.db"


def test_a_bad_pipeline_name_does_not_stop_train_but_stops_the_pipeline(tmp_path: Path) -> None:
    from launch import jobs

    settings = load_settings(write(tmp_path), ["pipeline.name=Bad_Name"])  # train and tune load these settings
    with pytest.raises(ConfigError, match="'pipeline.name' must be a pipeline name .* got 'Bad_Name'"):
        jobs.pipeline_definition(settings)


def test_a_quoted_name_through_set_warns_and_says_how_to_keep_the_quotes(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.WARNING, logger="launch.settings"):
        settings = load_settings(write(tmp_path), ['data.target="Spend"'])
    assert settings.data.target == "Spend"
    (line,) = [r.getMessage() for r in caplog.records]
    assert "it names SPEND" in line
    keeps = line.rsplit("keep them: ", 1)[1]
    assert keeps == """--set 'data.target="\\"Spend\\""'"""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="launch.settings"):
        kept = load_settings(write(tmp_path), [keeps.removeprefix("--set '").removesuffix("'")])
    assert kept.data.target == '"Spend"' and not caplog.records  # the form given keeps the quotes



@pytest.mark.parametrize(("override", "names", "keeps"), [
    ("data.target='Spend'", "SPEND", """--set 'data.target="\\"Spend\\""'"""),
    ('data.features=["Spend", "Cost"]', "SPEND, COST", """--set 'data.features=["\\"Spend\\"", "\\"Cost\\""]'"""),
    ('data.features="Spend,Cost"', "SPEND, COST", """--set 'data.features="\\"Spend\\",\\"Cost\\""'"""),
])
def test_quotes_lost_in_lists_and_literal_strings_warn_too(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                          override: str, names: str, keeps: str) -> None:
    import logging

    with caplog.at_level(logging.WARNING, logger="launch.settings"):
        load_settings(write(tmp_path), [override])
    (line,) = [r.getMessage() for r in caplog.records]
    assert f"it names {names};" in line and line.endswith(keeps), line
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="launch.settings"):
        kept = load_settings(write(tmp_path), [keeps.removeprefix("--set '").removesuffix("'")])
    assert not caplog.records
    assert all(name.startswith('"') for name in (kept.data.features or (kept.data.target,)))


def test_an_upper_case_name_loses_nothing_with_its_quotes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.WARNING, logger="launch.settings"):
        load_settings(write(tmp_path), ['data.features=["MEDINC", "HOUSEAGE"]', 'data.target="SPEND"'])
    assert not caplog.records


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    assert "not valid TOML" in error_of(tmp_path, text="region = ")


def test_ranges_override_and_exclude(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path), ["tuning.ranges.max_depth={low=4, high=8}", "tuning.exclude=['gamma']",
                                               "tuning.ranges.tree_method={values=['hist','approx']}"])
    space = search_space(settings)
    assert "gamma" not in space
    assert (space["max_depth"].kind, space["max_depth"].low, space["max_depth"].high) == ("integer", 4, 8)
    assert space["tree_method"].values == ("hist", "approx")


@pytest.mark.parametrize("value", ["{password='hunter2', user='u'}", "['hunter2']", "'hunter2 x'"])
def test_a_secret_pasted_for_its_id_is_not_repeated(tmp_path: Path, value: str) -> None:
    message = error_of(tmp_path, f"data.snowflake_secret_id={value}")
    assert "'data.snowflake_secret_id'" in message and "never the secret's value" in message
    assert "hunter2" not in message


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path))
    with pytest.raises(ValueError, match="frozen"):
        settings.compute.instance_count = 4  # type: ignore[misc]
