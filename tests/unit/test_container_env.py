"""The container contract: environment values the job parses are validated with the /opt/ml files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from container.env import TrainingEnv
from training import contract
from training.contract import LOGIN_TIMEOUT_ENV, NETWORK_TIMEOUT_ENV, RESOURCE_CONFIG, config_dir
from training.errors import ConfigError
from training.read.credentials import SignIn
from training.read.snowflake import DEFAULT_TIMEOUTS, SnowflakeTimeouts
from training.tracking.mlflow_recorder import TrackingSettings


def _tree(tmp_path: Path) -> Path:
    config = config_dir(tmp_path)
    config.mkdir(parents=True)
    (config / RESOURCE_CONFIG).write_text(json.dumps({"hosts": ["algo-1"], "current_host": "algo-1"}))
    return tmp_path


def _timeouts(tmp_path: Path, environ: dict[str, str]) -> SnowflakeTimeouts:
    return TrainingEnv.from_dir(_tree(tmp_path), environ).snowflake_timeouts


def test_timeouts_default_when_unset_or_empty(tmp_path):
    assert _timeouts(tmp_path, {}) == DEFAULT_TIMEOUTS == SnowflakeTimeouts(login=60, network=300)
    assert _timeouts(tmp_path / "b", {LOGIN_TIMEOUT_ENV: "", NETWORK_TIMEOUT_ENV: "  "}) == DEFAULT_TIMEOUTS


def test_timeouts_are_read_as_whole_seconds(tmp_path):
    parsed = _timeouts(tmp_path, {LOGIN_TIMEOUT_ENV: "5", NETWORK_TIMEOUT_ENV: " 30 "})
    assert parsed == SnowflakeTimeouts(login=5, network=30)


@pytest.mark.parametrize("name", [LOGIN_TIMEOUT_ENV, NETWORK_TIMEOUT_ENV])
@pytest.mark.parametrize("value", ["5s", "1.5", "0", "-3", "sixty"])
def test_a_malformed_timeout_is_a_config_error_naming_variable_and_fix_not_value(tmp_path, name, value):
    with pytest.raises(ConfigError) as info:
        _timeouts(tmp_path, {name: value})
    default = 60 if name == LOGIN_TIMEOUT_ENV else 300
    assert str(info.value) == (f"{name} is not a whole number of seconds, at least 1 (default {default}): set it in "
                               "the settings' [environment] (the job's environment), or leave it unset for the default")


def test_the_container_contract_carries_the_timeouts(tmp_path):
    env = TrainingEnv.from_dir(_tree(tmp_path), {LOGIN_TIMEOUT_ENV: "7"})
    assert env.snowflake_timeouts == SnowflakeTimeouts(login=7, network=300)


def test_the_container_contract_rejects_a_malformed_timeout_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match=f"^{NETWORK_TIMEOUT_ENV} is not a whole number of seconds"):
        TrainingEnv.from_dir(_tree(tmp_path), {NETWORK_TIMEOUT_ENV: "5m"})


def test_no_logged_line_carries_a_urls_query_string() -> None:
    """A result chunk's URL is a presigned link: the connector (or requests, by its path alone, in an
    exception's text) may name it; the job's log keeps only its path, tracebacks included."""
    import logging
    import sys

    from container.entry import RedactingFormatter, _library_records_without_traceback

    formatter = RedactingFormatter("%(name)s: %(message)s")
    record = logging.LogRecord("snowflake.connector.result_batch", logging.ERROR, __file__, 1,
                               "failed %s for url %s", ("GET", "https://bucket.s3.amazonaws.com/r/data_0_1?X-Amz-Signature=abc&k=v"),
                               None)
    assert _library_records_without_traceback(record)
    assert formatter.format(record) == ("snowflake.connector.result_batch: failed GET for url "
                                        "https://bucket.s3.amazonaws.com/r/data_0_1?<redacted>")
    try:
        raise OSError("HTTPSConnectionPool(host='b.s3.amazonaws.com', port=443): Max retries exceeded with url: "
                      "/r/data_0_3?X-Amz-Signature=abc123&x-amz-server-side-encryption-customer-key=k (Caused by x)")
    except OSError:
        ours = logging.LogRecord("container.entry", logging.ERROR, __file__, 1, "internal error", None, sys.exc_info())
    shown = formatter.format(ours)
    assert "Traceback" in shown and "/r/data_0_3?<redacted> (Caused by x)" in shown
    assert "abc123" not in shown and "customer-key" not in shown
    assert formatter.format(logging.LogRecord("training.job", logging.INFO, __file__, 1, "errno ? (what?)", None,
                                              None)) == "training.job: errno ? (what?)"  # no query: unchanged


def test_the_entry_program_starts_without_importing_scikit_learn() -> None:
    """XGBoost would import scikit-learn (2.5 s of each host's start) for estimators the program never uses."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "container", "no-such-command"], cwd=repo,
                          capture_output=True, text=True, timeout=120, check=False)
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "xgboost" in imported and "xgboost.core" in imported, done.stderr[-2000:]
    assert not {name for name in imported if name.startswith("sklearn.")}  # "sklearn" itself: the refused attempt


def test_the_job_environment_is_read_once_into_typed_values(tmp_path):
    """container/env.py is the one reader of the job's environment: training/ gets these values."""
    env = TrainingEnv.from_dir(_tree(tmp_path), {
        contract.SECRET_ID_ENV: "snowflake/xgb", contract.JOB_NAME_ENV: "xgb-1", contract.IMAGE_ENV: "ecr/xgb:1",
        contract.TUNING_JOB_ENV: "local-tune", contract.TRACKING_URI_ENV: " http://mlflow:5000 ",
        contract.EXPERIMENT_ENV: "housing", contract.REQUIRE_TRACKING_ENV: "no", contract.LEDGER_ENV: "/tmp/l"})
    assert env.sign_in == SignIn(secret_id="snowflake/xgb")
    assert env.tracking == TrackingSettings(uri="http://mlflow:5000", experiment="housing", required=False)
    assert (env.job_name, env.image, env.tuning_job_name, env.ledger_dir) == ("xgb-1", "ecr/xgb:1", "local-tune",
                                                                             Path("/tmp/l"))
    assert TrainingEnv.from_dir(tmp_path, {}).tracking == TrackingSettings(required=True)


def test_a_malformed_required_flag_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="MLFLOW_REQUIRED is not a boolean: set it to true"):
        TrainingEnv.from_dir(_tree(tmp_path), {contract.REQUIRE_TRACKING_ENV: "nope"})

