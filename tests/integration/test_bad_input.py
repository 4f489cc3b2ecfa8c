"""Bad input (issues 2 and 6): every case is one local job of the real container program.

Each must end with exit code 1, one actionable line in ``output/failure`` and in the log, no
traceback, no secret value anywhere, and no AWS or Snowflake call that detecting it does not need:

- hyperparameter and identifier defects run with Secrets Manager pointed at a recording endpoint
  and must leave no request there (they fail before the secret is read, so before any SQL);
- secret defects point the secret's Snowflake address at a silent listener that must see no
  connection (they fail before any sign-in);
- table and column defects need one query that reads no rows: the shard is never fetched.

One case of each kind of defect (:data:`OWN_PROCESS`) runs as the container program's own process, as
SageMaker runs it, so its exit code and failure file are seen from outside; those start first and run
meanwhile. The others run one after another through the same entry function in the test process
(:func:`tests.integration.battery.run_in_process`: its own host tree, environment and log, and no
Python start with its imports per case). Each test checks one case, whichever way it ran.
Set ``RELIABILITY_REPORT=<file>`` to write every outcome as JSON (docs/reliability.md is built from it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from launch import datasets
from launch.local.hosts import start_local_job
from launch.local.services import LocalStack
from tests import keys
from tests.helpers import SECRET_PASSWORD, synth_hps
from tests.integration.battery import (
    FakeSecretsManager,
    SilentListener,
    assert_no_secret,
    assert_user_failure,
    closed_port,
    run_in_process,
)
from training import contract

pytestmark = pytest.mark.slow

TABLE = "DEMO.PUBLIC.BATTERY"
EMPTY_TABLE = "DEMO.PUBLIC.BATTERY_EMPTY"
VICTIM = "DEMO.PUBLIC.VICTIM"
ROWS, NULL_TARGETS = 600, 37
BAD_DATA = {"table": TABLE, "target": "YFULL", "shard_key": "ID", "num_round": "5", "validation_fraction": "0.3"}
FAST_SNOWFLAKE = {contract.LOGIN_TIMEOUT_ENV: "5", contract.NETWORK_TIMEOUT_ENV: "5"}
UNREACHABLE_SECONDS = {"snowflake_refused": 90.0, "snowflake_silent": 150.0}
"""Generous behaviour bounds (not benchmarks) for failing on an unreachable account with 5 s timeouts.
An endpoint that accepts the connection and never answers holds each sign-in request for the
connector's own socket timeout (60 s, not lowered by login_timeout: Snowflake's query requests
long-poll for about 45 s, so it must stay above that): measured 65 to 80 s."""


@dataclass(frozen=True)
class Case:
    """One bad input: what the job is given, the message fragment expected, and which calls are allowed."""

    fragment: str
    hps: dict[str, str] = field(default_factory=lambda: synth_hps(num_round=3))
    secret: Callable[[Any], dict[str, Any] | str] | None = None  # built with the fixture's context
    env: dict[str, str] = field(default_factory=dict)
    aws: str = "moto"  # "moto", or "recorder": the denying endpoint that must see no request
    snowflake: str = "none"  # "none": no connection at all; "describe": no fetch; "fetch": needs the rows
    exit_code: int = 1


def _secret(**fields: Any) -> Callable[[Any], dict[str, Any]]:
    """A secret whose Snowflake address is the guard listener (it must never be contacted)."""
    return lambda ctx: ctx.stack.snowflake_secret(password=SECRET_PASSWORD, port=ctx.guard.port, **fields)


_INJECTIONS = {
    "injection_table_statement": ({"table": f"DEMO.PUBLIC.SYNTH50K; DROP TABLE {VICTIM}"},
                                  "is not a valid Snowflake table name"),
    "injection_table_quote": ({"table": f'DEMO.PUBLIC."SYNTH50K""; DROP TABLE {VICTIM}; --"'},
                              "is not a valid Snowflake table name"),
    "injection_target_quote": ({"target": f'Y" FROM {VICTIM}; DROP TABLE {VICTIM}; --'},
                               "target column 'Y\" FROM"),
    "injection_feature": ({"features": f"F0, F1 FROM {VICTIM}; DROP TABLE {VICTIM}"},
                          "feature column 'F1 FROM DEMO.PUBLIC.VICTIM"),
    "injection_shard_key_comment": ({"shard_key": "ID) = 0 OR (1 --"}, "shard_key column 'ID) = 0 OR (1 --'"),
}

CASES: dict[str, Case] = {
    # --- hyperparameters: fail before Secrets Manager is called ------------------------------------
    "hp_unknown": Case("unknown hyperparameter 'max_depht': remove it or use one of",
                       hps=synth_hps(max_depht=4), aws="recorder"),
    "hp_wrong_type": Case("hyperparameter 'num_round' must be an integer in [1, inf], got 'ten'",
                          hps=synth_hps(num_round="ten"), aws="recorder"),
    "hp_out_of_range": Case("hyperparameter 'eta' must be a number in (0, 1], got '1.5': set it within that range",
                            hps=synth_hps(eta=1.5), aws="recorder"),
    "validation_fraction_0": Case("hyperparameter 'validation_fraction' must be a number in (0, 1), got '0'",
                                  hps=synth_hps(validation_fraction=0), aws="recorder"),
    "validation_fraction_1": Case("hyperparameter 'validation_fraction' must be a number in (0, 1), got '1'",
                                  hps=synth_hps(validation_fraction=1), aws="recorder"),
    # --- identifiers that try SQL injection: fail before the secret is read, so before any SQL -----
    **{name: Case(fragment, hps=synth_hps(**hps), aws="recorder") for name, (hps, fragment) in _INJECTIONS.items()},
    # --- the job's environment: fails with the /opt/ml contract, before Secrets Manager is called ---
    "env_timeout_malformed": Case("SNOWFLAKE_NETWORK_TIMEOUT is not a whole number of seconds, at least 1 (default "
                                  "300): set it in the settings' [environment] (the job's environment)",
                                  env={contract.NETWORK_TIMEOUT_ENV: "5m"}, aws="recorder"),
    # --- the secret: fail before any Snowflake sign-in ---------------------------------------------
    "secret_id_unset": Case("SNOWFLAKE_SECRET_ID is not set: pass the Snowflake secret's id or ARN",
                            env={contract.SECRET_ID_ENV: ""}, aws="recorder"),
    "secret_not_found": Case("secret 'battery/secret_not_found' not found in Secrets Manager: check "
                             "SNOWFLAKE_SECRET_ID and the job's region"),
    "secret_access_denied": Case("access denied reading secret 'battery/secret_access_denied': grant the job's "
                                 "execution role secretsmanager:GetSecretValue", aws="denier"),
    "secret_not_json": Case("is not a JSON object: store the Snowflake credentials as JSON",
                            secret=lambda ctx: f"account=acme user=svc password={SECRET_PASSWORD}"),
    "secret_missing_field": Case("has no 'warehouse' field: add it", secret=_secret(warehouse="")),
    "secret_unknown_auth": Case("field 'auth' names an unknown method: use one of password, keypair, pat",
                                secret=_secret(auth="oauth")),
    "secret_unreadable_key": Case(
        "field 'private_key' cannot be read: store a PEM private key",
        secret=_secret(auth="keypair", private_key=f"-----BEGIN PRIVATE KEY-----\n{SECRET_PASSWORD}\n"
                                                   "-----END PRIVATE KEY-----\n")),
    "secret_wrong_passphrase": Case(
        "the right 'private_key_passphrase'",
        secret=_secret(auth="keypair", private_key=keys.pem("the-right-passphrase"),
                       private_key_passphrase=SECRET_PASSWORD)),
    # --- Snowflake: unreachable, within the sign-in timeout ----------------------------------------
    "snowflake_refused": Case(
        "cannot reach Snowflake account 'acme-unreachable'",
        secret=lambda ctx: ctx.stack.snowflake_secret(account="acme-unreachable", password=SECRET_PASSWORD,
                                                      port=closed_port()),
        env=FAST_SNOWFLAKE),
    "snowflake_silent": Case(
        "cannot reach Snowflake account 'acme-silent'",
        secret=lambda ctx: ctx.stack.snowflake_secret(account="acme-silent", password=SECRET_PASSWORD,
                                                      port=ctx.silent.port),
        env=FAST_SNOWFLAKE),
    # --- the table: one row-less query, no fetch --------------------------------------------------
    "table_missing": Case("table 'DEMO.PUBLIC.NO_SUCH_TABLE' does not exist or the role cannot see it",
                          hps={**BAD_DATA, "table": "DEMO.PUBLIC.NO_SUCH_TABLE"}, snowflake="describe"),
    "target_missing": Case(f"target column 'PRICE' is not in table '{TABLE}' (columns: ID, F0, F1, TXT, NUL, Y, "
                           "YFULL, FINF, DOC): fix the hyperparameter", hps={**BAD_DATA, "target": "PRICE"},
                           snowflake="describe"),
    "feature_variant": Case("column 'DOC' is VARIANT, which the job cannot train on: drop it from 'features', or "
                            "extract a number or text from it in a view", hps={**BAD_DATA, "features": "F0,DOC"},
                            snowflake="describe"),
    "target_text_regression": Case("target 'TXT' is TEXT but objective 'reg:squarederror' needs a number: use a "
                                   "classification objective", hps={**BAD_DATA, "target": "TXT", "features": "F0"},
                                   snowflake="describe"),
    "weight_text": Case("weight_column 'TXT' is TEXT, not a number: choose a numeric column",
                        hps={**BAD_DATA, "features": "F0", "weight_column": "TXT"}, snowflake="describe"),
    "infinite_values": Case(f"column 'FINF' has {ROWS // 120} infinite values (or numbers beyond float32's 3.4e38): "
                            "replace them in a view", hps={**BAD_DATA, "features": "F0,FINF"}, snowflake="fetch"),
    "weight_negative": Case("rows have a negative weight in 'F0': weights must be numbers >= 0",
                            hps={**BAD_DATA, "features": "F1", "weight_column": "F0"}, snowflake="fetch"),
    # --- a text column over the cap: fails in bounded memory, naming the column and its count ------
    "text_over_cap": Case(f"column 'TXT' has {ROWS} distinct values, over max_categories=100: raise the "
                          "hyperparameter 'max_categories', or drop the column from 'features'",
                          hps={**BAD_DATA, "features": "F0,TXT", "max_categories": "100"}, snowflake="fetch"),
    # --- the data: only the rows can tell -------------------------------------------------------
    "column_all_null": Case("column 'NUL' is entirely NULL: drop it from 'features'",
                            hps={**BAD_DATA, "features": "F0,NUL"}, snowflake="fetch"),
    "table_empty": Case(f"table '{EMPTY_TABLE}' has no rows to train on",
                        hps={**BAD_DATA, "table": EMPTY_TABLE, "features": "F0,F1"}, snowflake="fetch"),
    "null_target_fail": Case(f"{NULL_TARGETS} rows have a NULL target 'Y': filter them out in a view, or set "
                             "the hyperparameter null_target=drop", hps={**BAD_DATA, "target": "Y",
                                                                         "features": "F0,F1"},
                             snowflake="fetch"),
    "null_target_drop": Case(f"left out {NULL_TARGETS} rows whose target Y is NULL (null_target=drop)",
                             hps={**BAD_DATA, "target": "Y", "features": "F0,F1", "null_target": "drop"},
                             snowflake="fetch", exit_code=0),
}


OWN_PROCESS = ("snowflake_silent", "hp_unknown", "injection_table_statement", "env_timeout_malformed",
               "secret_not_json", "table_missing", "null_target_fail")
"""The case of each kind (a hyperparameter, an identifier, the environment, the secret, an unreachable
Snowflake, the table, the rows) that runs as the container program's own process: exit code and
failure file seen from outside."""


@dataclass
class Context:
    stack: LocalStack
    guard: SilentListener
    silent: SilentListener
    recorder: FakeSecretsManager
    outcomes: dict[str, tuple[Any, float]] = field(default_factory=dict)


def _seed_tables(stack: LocalStack, workdir: Path) -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=ROWS)
    target = pa.array(y, mask=np.arange(ROWS) < NULL_TARGETS)
    table = pa.table({"ID": np.arange(ROWS), "F0": rng.normal(size=ROWS), "F1": rng.normal(size=ROWS),
                      "TXT": [f"t{i}" for i in range(ROWS)], "NUL": pa.nulls(ROWS, pa.float64()), "Y": target,
                      "YFULL": y, "FINF": np.where(np.arange(ROWS) % 120 == 0, np.inf, 1.0)})
    conn = stack.connect()
    try:
        for name, data in ((TABLE, table), (EMPTY_TABLE, table.slice(0, 0)), (VICTIM, table.slice(0, 10))):
            path = workdir / f"{name.rsplit('.', 1)[-1].lower()}.parquet"
            pq.write_table(data, path)
            datasets.load_parquet(conn, name.rsplit(".", 1)[-1], path)
        conn.cursor().execute(f'ALTER TABLE {TABLE} ADD COLUMN "DOC" VARIANT')  # semi-structured: not trainable
    finally:
        conn.close()


def _env(case_name: str, case: Case, ctx: Context, job_env: dict[str, str]) -> dict[str, str]:
    env = {**job_env, contract.SECRET_ID_ENV: f"battery/{case_name}"}
    if case.aws in ("recorder", "denier"):
        env["AWS_ENDPOINT_URL"] = ctx.recorder.url
    if case.secret is None and case.aws == "moto" and case_name != "secret_not_found":
        env[contract.SECRET_ID_ENV] = job_env[contract.SECRET_ID_ENV]  # the session's good secret
    return {**env, **case.env}


@pytest.fixture(scope="module")
def ctx(stack: LocalStack, job_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("bad-input")
    _seed_tables(stack, workdir)
    with SilentListener() as guard, SilentListener() as silent, FakeSecretsManager() as recorder, \
            ThreadPoolExecutor(max_workers=len(OWN_PROCESS)) as waiters:
        context = Context(stack, guard, silent, recorder)
        for name, case in CASES.items():
            if case.secret is not None:
                stack.put_secret(f"battery/{name}", case.secret(context))
        # The processes first (each copies this process's environment as it starts, before any case below
        # changes it); the silent endpoint's mostly waits on the connector's socket timeout.
        waiting = {name: waiters.submit(_own_process(CASES[name].hps, _env(name, CASES[name], context, job_env),
                                                     workdir, name)) for name in OWN_PROCESS}
        for name, case in CASES.items():
            if name not in OWN_PROCESS:
                started = time.monotonic()
                result = run_in_process(case.hps, workdir, _env(name, case, context, job_env), name)
                context.outcomes[name] = (result, time.monotonic() - started)
        context.outcomes.update({name: future.result() for name, future in waiting.items()})
        _write_report(context.outcomes)
        yield context


def _own_process(hps: dict[str, str], env: dict[str, str], workdir: Path, name: str) -> Callable[[], tuple[Any, float]]:
    """Start the case's job (a host process) now; the callable waits for it, timed from its start."""
    started = time.monotonic()
    job = start_local_job(hps, hosts=1, workdir=workdir, env=env, job_name=name)
    return lambda: (job.wait(timeout=300), time.monotonic() - started)


def _write_report(outcomes: dict[str, tuple[Any, float]]) -> None:
    target = os.environ.get("RELIABILITY_REPORT")
    if not target:
        return
    report = {name: {"exit_code": result.exit_code, "failure": result.failure, "seconds": round(seconds, 1),
                     "hps": CASES[name].hps} for name, (result, seconds) in outcomes.items()}
    Path(target).write_text(json.dumps(report, indent=2))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(ctx: Context, name: str) -> None:
    case = CASES[name]
    result, seconds = ctx.outcomes[name]
    log = result.logs[0].read_text(errors="replace")
    if case.exit_code == 0:
        assert result.exit_code == 0, result.failure
        assert case.fragment in log and result.rounds == 5
    else:
        assert_user_failure(result, case.fragment)
    # no call that detecting the defect does not need
    if case.aws == "recorder":
        assert ctx.recorder.calls(f"battery/{name}") == 0, ctx.recorder.requests
    if case.snowflake == "none":
        assert "read_mode=" not in log  # the plan's line: the table was never described
    if case.snowflake == "describe":
        assert "read_mode=" not in log and "fetched" not in log
    if case.snowflake == "fetch":
        assert "fetched" in log
    if name == "text_over_cap":  # the spill stopped at the cap instead of holding every value
        assert "column 'TXT' has more than 100 distinct values: stopped fetching" in log
    assert_no_secret(result.host_dirs, SECRET_PASSWORD)


def test_no_defect_reached_a_service_it_did_not_need(ctx: Context) -> None:
    # Only the access-denied case may reach the denying Secrets Manager; no case may reach the guard.
    assert {secret for _, secret in ctx.recorder.requests} == {"battery/secret_access_denied"}
    assert ctx.guard.connections == 0


def test_unreachable_snowflake_fails_within_the_sign_in_timeout(ctx: Context) -> None:
    for name in ("snowflake_refused", "snowflake_silent"):
        line = ctx.outcomes[name][0].failure
        assert "VPC subnets need a NAT gateway or PrivateLink" in line and "account identifier" in line, line
        assert ctx.outcomes[name][1] < UNREACHABLE_SECONDS[name], (name, ctx.outcomes[name][1])
    assert ctx.silent.connections >= 1  # the silent case did try, and gave up on its own


def test_injection_attempts_left_the_table_in_place(ctx: Context) -> None:
    conn = ctx.stack.connect()
    try:
        assert datasets.table_rows(conn, VICTIM) == 10
    finally:
        conn.close()
