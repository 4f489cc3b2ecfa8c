"""``train --local --settings`` and ``tune --local --settings``: the user's own job on local hosts.

Through the CLI entry, with a settings file in ``tmp_path``: a ``--data`` Parquet file loaded into
the embedded Snowflake as the settings' table (the one test whose command starts its own stand-ins),
the user's real Snowflake chosen when the settings name a secret and AWS credentials resolve, and
the one-line errors. The CSV and tuning tests load their files into the session's local Snowflake
with the loader ``--data`` uses, then run the command on the real-Snowflake path against it (the
session's moto server at ``AWS_ENDPOINT_URL``, its secret for that Snowflake), so no stand-in starts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import xgboost as xgb

from launch import datasets
from launch.cli import main
from launch.local import user_job
from launch.settings import load_settings
from tests.helpers import SECRET_ID, SECRET_PASSWORD, SYNTH_TABLE, outputs_text
from training import contract
from training.model.booster import PLAN_ATTRIBUTE
from training.read.columns import ColumnPlan

ROWS = 600
PARQUET_FEATURES = ['"Price"', '"Units Sold"', '"is_member"', '"signup_date"', '"last_seen"', '"region"']


def _settings(path: Path, data: str, hyperparameters: str = "", tuning: str = "") -> Path:
    """A complete settings file (as for SageMaker) whose [data] section is ``data``."""
    path.write_text(f"""
region = "us-east-1"
role = "arn:aws:iam::123456789012:role/SageMakerXGBoostTraining"
image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/snowflake-xgboost:latest"
[data]
{data}
[output]
s3_path = "s3://my-bucket/models"
[hyperparameters]
num_round = 6
max_depth = 3
eta = 0.3
{hyperparameters}
[tuning]
{tuning}
""")
    return path


def _orders(rows: int = ROWS) -> pa.Table:
    """A table shaped like a user's: case-sensitive names (one with a space), a nullable integer,
    a nullable boolean, a date, a timestamp, text; ``Spend`` depends on most of them."""
    rng = np.random.default_rng(3)
    price = rng.uniform(1, 100, rows)
    units = rng.integers(0, 20, rows)
    member = rng.random(rows) < 0.4
    region = rng.choice(["north", "south", "east"], rows)
    spend = price + 4 * units + 30 * member + np.where(region == "south", 25.0, 0.0) + rng.normal(0, 3, rows)
    return pa.table({
        "id": pa.array(np.arange(rows, dtype=np.int64)),
        "Price": pa.array(price),
        "Units Sold": pa.array(units, pa.int32(), mask=rng.random(rows) < 0.1),
        "is_member": pa.array(member, mask=rng.random(rows) < 0.05),
        "signup_date": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 300, rows)]),
        "last_seen": pa.array([dt.datetime(2025, 1, 1) + dt.timedelta(hours=int(h)) for h in rng.integers(0, 900, rows)],
                              pa.timestamp("us")),
        "region": pa.array(region.astype(object), pa.string()),
        "Spend": pa.array(spend),
    })


def _plan(result_dir: Path) -> ColumnPlan:
    (model,) = result_dir.glob("jobs/*/127.0.0.1/model/xgboost-model")
    return ColumnPlan.from_json(xgb.Booster(model_file=str(model)).attr(PLAN_ATTRIBUTE))


@pytest.fixture
def no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(contract.TRACKING_URI_ENV, "")  # these tests are about the data, not MLflow


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """AWS credentials in the environment only (no ~/.aws, no instance metadata)."""
    _no_aws_credentials(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUSERKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "user-secret-key")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "user-session-token")


def _no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


# ---------------------------------------------------------------------------------------------
# --data: the embedded Snowflake with the user's file


@pytest.mark.slow
def test_a_parquet_file_is_the_settings_table_with_its_own_names_and_types(tmp_path, no_tracking, capsys) -> None:
    """The table named with --set as in Snowflake: case-sensitive parts holding spaces."""
    pq.write_table(_orders(), tmp_path / "orders.parquet")
    settings = _settings(tmp_path / "settings.toml", f"""
table = 'SALES.RAW."Orders"'
target = '"Spend"'
features = {json.dumps(PARQUET_FEATURES)}
snowflake_secret_id = "prod/snowflake"
""", hyperparameters="shard_key = '\"id\"'")
    table = ['data.table=HOLD."Mixed Case"."Sales Data"']
    argv = ["train", "--local", "--settings", str(settings), "--set", table[0], "--data",
            str(tmp_path / "orders.parquet"), "--hosts", "2", "--workdir", str(tmp_path / "work")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    leader_log = next((tmp_path / "work").glob("jobs/*/127.0.0.1/log.txt")).read_text()
    assert 'reading HOLD."Mixed Case"."Sales Data" as host 0 of 2' in leader_log
    other_log = next((tmp_path / "work").glob("jobs/*/127.0.0.2/log.txt")).read_text()
    for log in (leader_log, other_log):  # XGBoost's joining chatter gave way to at most one line
        assert log.count("waiting for the tracker at") <= 1 and "Retrying connection" not in log, log
        assert "got rank" not in log and "joined the collective as rank" in log, log
    assert re.search(r"final metrics: train-rmse [\d.]+, validation-rmse [\d.]+ after 6 rounds", out), out
    assert re.search(r"progress: round 6/6, best validation-rmse [\d.]+ at \[\d\], \d+s elapsed", out), out
    plan = _plan(tmp_path / "work")
    types = {c.name: c.snowflake_type for c in plan.columns}
    assert types == {"Price": "REAL", "Units Sold": "FIXED", "is_member": "BOOLEAN", "signup_date": "DATE",
                     "last_seen": "TIMESTAMP_NTZ", "region": "TEXT", "Spend": "REAL"}
    assert plan.vocabularies["region"] == ("east", "north", "south")
    (hps,) = (tmp_path / "work").glob("jobs/*/127.0.0.1/input/config/hyperparameters.json")
    sent = json.loads(hps.read_text())
    assert {k: sent[k] for k in ("table", "target", "num_round")} == \
        {k: v for k, v in load_settings(settings, table, local=True).job_hyperparameters.items()
         if k in ("table", "target", "num_round")}  # the SageMaker job's own hyperparameters


@pytest.mark.slow
def test_a_table_name_the_embedded_snowflake_cannot_take_fails_in_one_line(tmp_path, no_tracking, capsys) -> None:
    pq.write_table(_orders(50), tmp_path / "orders.parquet")
    settings = _settings(tmp_path / "settings.toml", """
table = '"My DB".PUBLIC."Orders"'
target = '"Spend"'
""")
    argv = ["train", "--local", "--settings", str(settings), "--data", str(tmp_path / "orders.parquet"),
            "--workdir", str(tmp_path / "work")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("""error: the embedded Snowflake could not load the --data file as table '"My DB".PUBLIC."Orders"' """
                          "(") and "--set data.table=NAME" in err and err.count("\n") == 1, err


def _load_into_session_snowflake(stack, data: Path, table: str) -> None:
    """``data`` as ``train --local --data`` loads it (checked, written as Parquet, loaded as ``table``),
    into the session's local Snowflake."""
    parquet = data.with_name(f"{data.stem}-loaded.parquet")
    datasets.write_data_file(data, parquet)
    user_job.load_data_file(stack, table, parquet)


@pytest.fixture
def session_snowflake(stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The user's "real" Snowflake is the session's: AWS credentials in the environment, the session's moto
    server at the endpoint the user's environment names; returns the settings' [data] sign-in line."""
    _no_aws_credentials(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.aws_endpoint)
    return f'snowflake_secret_id = "{SECRET_ID}"'


@pytest.mark.slow
def test_a_csv_file_loads_with_the_types_pyarrow_infers(tmp_path, no_tracking, session_snowflake, stack,
                                                        capsys) -> None:
    table = _orders().select(["id", "Price", "Units Sold", "is_member", "signup_date", "region", "Spend"])
    table = table.rename_columns(["ID", "PRICE", "UNITS", "MEMBER", "SIGNED", "city", "SPEND"])
    pacsv.write_csv(table, tmp_path / "orders.csv")
    _load_into_session_snowflake(stack, tmp_path / "orders.csv", "CSV_ORDERS")
    settings = _settings(tmp_path / "settings.toml", f"""
table = "CSV_ORDERS"
target = "SPEND"
features = ["PRICE", "UNITS", "MEMBER", "SIGNED", '"city"']
{session_snowflake}
""", hyperparameters='shard_key = "ID"')
    argv = ["train", "--local", "--settings", str(settings), "--hosts", "2", "--workdir", str(tmp_path / "work")]
    assert main(argv) == 0
    assert "after 6 rounds" in capsys.readouterr().out
    assert not list((tmp_path / "work").glob("*-server.log"))  # the session's Snowflake: no stand-in started
    types = {c.name: c.snowflake_type for c in _plan(tmp_path / "work").columns}
    assert types == {"PRICE": "REAL", "UNITS": "FIXED", "MEMBER": "BOOLEAN", "SIGNED": "DATE", "city": "TEXT",
                     "SPEND": "REAL"}


@pytest.mark.slow
def test_tune_local_searches_the_settings_ranges_on_the_file(tmp_path, no_tracking, session_snowflake, stack,
                                                             capsys) -> None:
    pq.write_table(_orders(), tmp_path / "orders.parquet")
    _load_into_session_snowflake(stack, tmp_path / "orders.parquet", "TUNE_ORDERS")
    settings = _settings(tmp_path / "settings.toml", f"""
table = "TUNE_ORDERS"
target = '"Spend"'
{session_snowflake}
""", hyperparameters="shard_key = '\"id\"'", tuning="""local_trials = 2
exclude = ["min_child_weight", "subsample", "colsample_bytree", "lambda", "alpha", "gamma"]
[tuning.ranges]
eta = { low = 0.05, high = 0.5 }
""")
    settings.write_text(settings.read_text().replace("eta = 0.3\n", ""))  # eta is searched, not pinned
    argv = ["tune", "--local", "--settings", str(settings), "--hosts", "2", "--workdir", str(tmp_path / "work")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if re.match(r"\s+\d+\s+[\d.]+\s+eta=", line)]
    assert len(rows) == 2, out
    assert all("num_round=6" in row and "max_depth=3" in row for row in rows)  # pinned by [hyperparameters]
    etas = {re.search(r"eta=(\S+)", row).group(1) for row in rows}
    assert len(etas) == 2 and all(0.05 <= float(e) <= 0.5 for e in etas), etas
    assert len(list((tmp_path / "work").glob("jobs/*/127.0.0.2"))) == 2  # two trials of two hosts
    assert not list((tmp_path / "work").glob("*-server.log"))  # the session's Snowflake: no stand-in started


@pytest.mark.parametrize(("data", "message"), [
    (None, "the settings name no Snowflake sign-in (data.snowflake_secret_id or [data.snowflake_connection]): "
           "pass --data FILE"),
    ("orders.xlsx", "not a .parquet or .csv file"),
    ("absent.parquet", "no such file: check the path"),
    ("orders.parquet", """has no column for target column 'spend' (the file has 'Spend': write it as '"Spend"'); """
                       """feature column '"Discount"'"""),
])
@pytest.mark.parametrize("command", ["train", "tune"])
def test_bad_data_fails_in_one_line_before_anything_starts(tmp_path, capsys, command: str, data: str | None,
                                                            message: str) -> None:
    pq.write_table(_orders(50), tmp_path / "orders.parquet")
    (tmp_path / "orders.xlsx").write_bytes(b"PK")
    settings = _settings(tmp_path / "settings.toml", """
table = "ORDERS"
target = "spend"
features = ['"Price"', '"Discount"']
""")
    argv = [command, "--local", "--settings", str(settings), "--workdir", str(tmp_path / "work")]
    assert main(argv + (["--data", str(tmp_path / data)] if data else [])) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not list((tmp_path / "work").glob("*-server.log"))  # no server was started


# ---------------------------------------------------------------------------------------------
# The user's real Snowflake


def test_the_real_snowflake_gets_the_jobs_environment_and_aws_credentials(tmp_path, aws_credentials) -> None:
    """Secret named + credentials: the hosts read the real Secrets Manager (no endpoint of ours)."""
    settings = load_settings(_settings(tmp_path / "s.toml", """
table = "ORDERS"
target = "SPEND"
snowflake_secret_id = "prod/snowflake"
"""), local=True)
    credentials = user_job.aws.boto_session(settings.region).get_credentials()
    assert user_job.choose_snowflake(settings, None, credentials) == user_job.REAL
    assert user_job.choose_snowflake(settings, tmp_path / "orders.csv", credentials) == user_job.EMBEDDED
    env = user_job.real_env(settings, credentials)
    assert env == {contract.SECRET_ID_ENV: "prod/snowflake", "AWS_REGION": "us-east-1",
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIAUSERKEY",
                   "AWS_SECRET_ACCESS_KEY": "user-secret-key", "AWS_SESSION_TOKEN": "user-session-token"}
    workload = load_settings(tmp_path / "s.toml", ["data.snowflake_secret_id=''",
                                                   "data.snowflake_connection.account=myorg-acct",
                                                   "data.snowflake_connection.warehouse=WH",
                                                   "data.snowflake_connection.database=DB",
                                                   "data.snowflake_connection.schema=PUBLIC",
                                                   "data.snowflake_connection.role=ML"], local=True)
    env = user_job.real_env(workload, credentials)
    assert contract.SECRET_ID_ENV not in env and "AWS_ENDPOINT_URL" not in env
    assert json.loads(env[contract.CONNECTION_ENV])["account"] == "myorg-acct"
    assert env["AWS_REGION"] == "us-east-1"


def test_a_secret_without_aws_credentials_says_to_sign_in_or_pass_data(tmp_path, monkeypatch, capsys) -> None:
    _no_aws_credentials(monkeypatch, tmp_path)
    settings = _settings(tmp_path / "s.toml", """
table = "ORDERS"
target = "SPEND"
snowflake_secret_id = "prod/snowflake"
""")
    assert main(["train", "--local", "--settings", str(settings), "--workdir", str(tmp_path / "work")]) == 1
    err = capsys.readouterr().err
    assert err == ("error: the settings read your Snowflake through secret 'prod/snowflake' from Secrets Manager, "
                   "but no AWS credentials were found (environment, ~/.aws, AWS_PROFILE, SSO): sign in to AWS, or "
                   "pass --data FILE (.parquet or .csv) to train on a local copy of the table\n")


@pytest.mark.slow
def test_the_real_path_reads_the_secret_where_aws_credentials_point(tmp_path, monkeypatch, capsys, caplog,
                                                                    session_snowflake) -> None:
    """The real path end to end, with the session's moto server standing in for AWS at the endpoint
    the user's own environment names (``AWS_ENDPOINT_URL``, a boto3 setting), and its secret for
    the session's local Snowflake: the launcher starts no stand-in and passes the secret's id only."""
    caplog.set_level(logging.INFO, logger=user_job.__name__)
    monkeypatch.setenv(contract.TRACKING_URI_ENV, "")
    settings = _settings(tmp_path / "settings.toml", f"""
table = "DEMO.PUBLIC.{SYNTH_TABLE}"
target = "Y"
{session_snowflake}
""", hyperparameters='shard_key = "ID"')
    workdir = tmp_path / "work"
    assert main(["train", "--local", "--settings", str(settings), "--hosts", "2", "--workdir", str(workdir)]) == 0
    out, err = capsys.readouterr()
    assert f"Snowflake: yours, through secret '{SECRET_ID}' from Secrets Manager (AWS credentials from env, " \
           "region us-east-1)" in caplog.text
    assert "after 6 rounds" in out
    assert not list(workdir.glob("*-server.log"))  # neither stand-in was started
    (job,) = workdir.glob("jobs/*")
    assert "fetched" in (job / "127.0.0.1" / "log.txt").read_text()
    left = outputs_text(SimpleNamespace(host_dirs=sorted(job.iterdir())))
    assert SECRET_PASSWORD not in left + out + err + caplog.text
