"""The contract's public names: what users type in job environments and docs, pinned once here.

Every other module and test imports them from :mod:`training.contract`; this test is the one place
they are written out, so renaming one is a decision (and a docs change), never an accident.
"""

from __future__ import annotations

from pathlib import Path

from training import contract

REPO = Path(__file__).resolve().parents[2]

PUBLIC_ENV = {
    "SECRET_ID_ENV": "SNOWFLAKE_SECRET_ID",
    "CONNECTION_ENV": "SNOWFLAKE_CONNECTION",
    "REGION_ENV": "AWS_REGION",
    "LOGIN_TIMEOUT_ENV": "SNOWFLAKE_LOGIN_TIMEOUT",
    "NETWORK_TIMEOUT_ENV": "SNOWFLAKE_NETWORK_TIMEOUT",
    "TRACKING_URI_ENV": "MLFLOW_TRACKING_URI",
    "EXPERIMENT_ENV": "MLFLOW_EXPERIMENT_NAME",
    "REQUIRE_TRACKING_ENV": "MLFLOW_REQUIRED",
    "TUNING_JOB_ENV": "TUNING_JOB_NAME",
    "JOB_NAME_ENV": "TRAINING_JOB_NAME",
    "IMAGE_ENV": "IMAGE_URI",
    "BASE_DIR_ENV": "SAGEMAKER_BASE_DIR",
    "SPILL_DIR_ENV": "SPILL_DIR",
    "SCORING_MODEL_ENV": "SCORING_MODEL_DIR",
    "LEDGER_ENV": "COLLECTIVE_LEDGER",
    "SERVING_PORT_ENV": "SAGEMAKER_BIND_TO_PORT",
    "SERVING_WORKERS_ENV": "SAGEMAKER_MODEL_SERVER_WORKERS",
    "SERVING_TIMEOUT_ENV": "SAGEMAKER_MODEL_SERVER_TIMEOUT",
}


def test_environment_names_are_the_documented_ones() -> None:
    defined = {name: getattr(contract, name) for name in dir(contract) if name.endswith("_ENV")}
    assert defined == PUBLIC_ENV
    table = (REPO / "docs" / "image.md").read_text().split("## The container's environment")[1].split("\n## ")[0]
    documented = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    assert documented == set(PUBLIC_ENV.values())  # docs/image.md lists each one, and no other


def test_opt_ml_layout_is_sagemakers() -> None:
    base = Path("/opt/ml")
    assert contract.DEFAULT_BASE_DIR == base
    assert contract.config_dir(base) / contract.RESOURCE_CONFIG == base / "input/config/resourceconfig.json"
    assert contract.config_dir(base) / contract.HYPERPARAMETERS == base / "input/config/hyperparameters.json"
    assert contract.config_dir(base) / contract.CHECKPOINT_CONFIG == base / "input/config/checkpointconfig.json"
    assert contract.model_dir(base) / contract.MODEL_FILE == base / "model/xgboost-model"
    assert contract.failure_file(base) == base / "output/failure"
    assert contract.default_checkpoint_dir(base) == base / "checkpoints"
