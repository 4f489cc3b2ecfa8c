"""The launcher's one CLI: subcommands, one meaning per flag, and the aliases users know."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from launch import cli
from launch.settings import local_hyperparameters
from training.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ("train", "tune", "pipeline", "register", "deploy", "score")


def _subparsers() -> dict:
    (action,) = [a for a in cli.parser()._subparsers._group_actions]  # noqa: SLF001  argparse has no public API
    return action.choices


def test_every_subcommand_is_listed_and_shares_the_settings_flags() -> None:
    subparsers = _subparsers()
    assert tuple(subparsers) == COMMANDS
    for name, sub in subparsers.items():
        flags = {opt for action in sub._actions for opt in action.option_strings}  # noqa: SLF001
        assert {"--settings", "--set", "--profile", "--verbose"} <= flags, name
    assert "--hp" not in {opt for action in subparsers["tune"]._actions for opt in action.option_strings}  # noqa: SLF001


@pytest.mark.parametrize("command", ["-m launch", "launch/train.py", "launch/tune.py", "launch/pipeline.py",
                                     "launch/register.py"])
def test_the_module_and_the_script_names_run_the_same_program(command: str) -> None:
    args = command.split() + ["--help"] if command.startswith("-m") else [command, "--help"]
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    if command.startswith("-m"):
        assert all(name in done.stdout for name in COMMANDS)
    else:
        assert f"python -m launch {Path(command).stem}" in done.stdout


@pytest.mark.parametrize(("flag", "message"), [("--dry-run", "--local sends nothing to AWS: drop --dry-run/--wait"),
                                               ("--wait", "--local sends nothing to AWS: drop --dry-run/--wait"),
                                               ("--data=orders.parquet", "--data needs --settings FILE")])
@pytest.mark.parametrize("command", ["train", "tune"])
def test_local_mode_refuses_what_only_aws_mode_uses(command: str, flag: str, message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([command, "--local", flag]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


def test_set_takes_settings_keys_in_local_mode_too() -> None:
    with_file = local_hyperparameters(["tuning.local_trials=8", "hyperparameters.eta=0.1"], settings_file=True)
    assert with_file == {"eta": "0.1"}  # the other keys are the settings file's overrides
    hps = local_hyperparameters(["hyperparameters.num_round=300", "hyperparameters.eval_metric=[\"rmse\", \"mae\"]",
                                 "data.target='\"Label\"'", "data.features=[\"A\", \"B\"]"])
    assert hps == {"num_round": "300", "eval_metric": "rmse,mae", "target": '"Label"', "features": "A,B"}


@pytest.mark.parametrize(("override", "message"), [
    ("num_round=300", "hyperparameters are set as hyperparameters.num_round=..."),
    ("compute.instance_count=4", "use --hosts"),
    ("data.warehouse=X", "expected one of table, target, features"),
    ("hyperparameters.table=T", "set data.table instead"),
    ("num_round", "is not KEY=VALUE"),
])
def test_a_set_local_mode_cannot_use_is_one_line(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=".*") as err:
        local_hyperparameters([override])
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("command", ["train", "tune"])
def test_local_hosts_are_checked_before_anything_starts(command: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """No embedded Snowflake, moto or MLflow is started (nothing is written to the work directory) for a
    --hosts that local mode cannot run."""
    assert cli.main([command, "--local", "--hosts", "12", "--workdir", str(tmp_path / "work")]) == 1
    err = capsys.readouterr().err
    assert err == "error: --hosts must be between 1 and 9 in local mode, got 12\n"
    assert not (tmp_path / "work").exists()


def test_set_with_a_space_instead_of_equals_says_how_to_write_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["train", "--dry-run", "--set", "compute.instance_count", "4"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "'compute.instance_count' has no '=': write --set compute.instance_count=VALUE" in err
    assert "unrecognized arguments" not in err


def test_profile_names_the_aws_profile_every_session_uses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import boto3

    from launch import aws
    from launch.console import use_profile

    config = tmp_path / "config"
    config.write_text("[profile team]\nregion = eu-west-1\naws_access_key_id = AKIATEAM\n"
                      "aws_secret_access_key = team-secret\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_PROFILE", "default")  # restored after the test: use_profile sets it
    assert cli.main(["train", "--dry-run", "--profile", "nope"]) == 1
    assert capsys.readouterr().err == ("error: --profile nope: no such AWS profile in ~/.aws/config or "
                                       "~/.aws/credentials; list them with: aws configure list-profiles\n")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASHELL")  # keys exported in the shell: botocore prefers them
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "shell-secret")
    with caplog.at_level(logging.WARNING, logger="launch.console"):
        use_profile("team")
    assert aws.boto_session("us-west-2").get_credentials().access_key == "AKIATEAM"  # ours
    assert boto3.Session().get_credentials().access_key == "AKIATEAM"  # the SDK's and sagemaker-mlflow's
    assert [r.getMessage() for r in caplog.records] == [
        "--profile team: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY in this shell's environment set aside for this command"]
