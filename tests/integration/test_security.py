"""Security (issue 6): no secret in any output, only validated and quoted identifiers in the SQL
sent to Snowflake, no credentials in the image's build context.

The bad-input and fault batteries search their own jobs' outputs for the secret value too; this
module adds a successful multi-host job with checkpoints, spill files, a model and an MLflow store.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from launch.local.runs import mlflow_env
from tests.helpers import SECRET_ID, SECRET_PASSWORD, synth_hps
from tests.integration.battery import assert_no_secret
from training.collective.cluster import Cluster
from training.hyperparameters import parse_hyperparameters
from training.job import JobSpec, run_job
from training.read.credentials import SignIn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the Dockerfile reader
from dockerfile_contract import DOCKERFILE, REPO, dockerignored, instruction_args  # noqa: E402

from training import contract

PROBE_TABLE = 'DEMO.PUBLIC."Probe Table"'
PROBE_ROWS = 300


@pytest.mark.slow
def test_no_output_of_a_multi_host_job_holds_the_secret(run_job, tmp_path, monkeypatch):
    monkeypatch.delenv(contract.TRACKING_URI_ENV, raising=False)
    tracking = mlflow_env(tmp_path / "tracking")  # a local MLflow store: runs, params, the model
    result = run_job(synth_hps(num_round=6, checkpoint_interval=2), hosts=2, env=tracking)
    assert result.exit_code == 0, result.failure
    checkpoints = list(contract.default_checkpoint_dir(result.host_dirs[0]).iterdir())
    spills = list((result.host_dirs[1] / "spill").iterdir())
    store = list((tmp_path / "tracking").rglob("*"))
    assert result.model_path and checkpoints and spills and any(p.suffix == ".db" for p in store)
    # every byte under the host trees (logs, config, model, checkpoints, spill) and the MLflow store
    assert_no_secret([*result.host_dirs, tmp_path / "tracking"], SECRET_PASSWORD)
    # read_mode=scan dealt result batches (bearer chunk URLs, the SSE-C key) between the hosts: none is kept
    assert "one query for 2 host(s)" in result.logs[0].read_text()
    for marker in ("sig=", "x-amz-server-side-encryption", "qrmk"):
        assert_no_secret([*result.host_dirs, tmp_path / "tracking"], marker)


def _create_probe_table(stack) -> None:
    rows = ", ".join(f"({i}, {i % 7}.5, {i % 11}.25, {i % 5}.0)" for i in range(PROBE_ROWS))
    conn = stack.connect()
    try:
        cursor = conn.cursor()
        cursor.execute(f'CREATE OR REPLACE TABLE {PROBE_TABLE} ("Key Col" INTEGER, "feat one" FLOAT, '
                       "FEAT_TWO FLOAT, TARGET_Z FLOAT)")
        cursor.execute(f"INSERT INTO {PROBE_TABLE} VALUES {rows}")  # noqa: S608  (the test's own SQL)
    finally:
        conn.close()


def _record_sql(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the SQL text of every query request the connector sends (its ``sqlText``)."""
    from snowflake.connector.connection import SnowflakeConnection

    sent: list[str] = []
    original = SnowflakeConnection.cmd_query

    def spy(self, sql, *args, **kwargs):
        sent.append(sql)
        return original(self, sql, *args, **kwargs)

    monkeypatch.setattr(SnowflakeConnection, "cmd_query", spy)
    return sent


@pytest.mark.slow
def test_sql_sent_to_snowflake_holds_user_identifiers_only_quoted(stack, tmp_path, monkeypatch):
    _create_probe_table(stack)
    for key, value in stack.aws_env().items():
        monkeypatch.setenv(key, value)
    # user-given identifiers in every form: quoted with spaces, bare lower case, mixed
    given = {"table": PROBE_TABLE, "target": "target_z", "features": '"feat one", feat_two',
             "shard_key": '"Key Col"', "num_round": "2", "validation_fraction": "0.3"}
    spec = JobSpec(hyperparameters=parse_hyperparameters(given), cluster=Cluster.from_hosts(["h"], "h"),
                   model_dir=tmp_path / "model", spill_dir=tmp_path / "spill",
                   sign_in=SignIn(secret_id=SECRET_ID))
    queries = _record_sql(monkeypatch)
    result = run_job(spec)
    assert result.rows_total == PROBE_ROWS
    assert len(queries) >= 2  # the row-less describe and the shard
    names = ("Probe Table", "Key Col", "feat one", "feat_two", "target_z")
    for sql in queries:
        # outside double-quoted identifiers and string literals, no user-given name appears
        bare = re.sub(r"'(?:[^']|'')*'", "''", re.sub(r'"(?:[^"]|"")*"', '""', sql))
        for name in names:
            assert name.lower() not in bare.lower(), (name, sql)
    shard = next(sql for sql in queries if "MOD(ABS(HASH(" in sql)
    for quoted in ('"DEMO"."PUBLIC"."Probe Table"', '"Key Col"', '"feat one"', '"FEAT_TWO"', '"TARGET_Z"'):
        assert quoted in shard, (quoted, shard)


# --- the image ---------------------------------------------------------------------------------

CREDENTIAL_PATTERNS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(r"(?i)aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+]{20,}"),
    "private key block": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----\s*[A-Za-z0-9+/=\s]{40,}"),
    "credential literal": re.compile(r"(?i)\b(?:password|passwd|passphrase|token|secret|private_key)['\"]?\s*[=:]\s*"
                                     r"['\"][^'\"\s.]{6,}['\"]"),
    "Snowflake PAT or JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}"),
}
CREDENTIAL_FILES = re.compile(r"(?i)(\.pem|\.p8|\.key|\.p12|\.pfx|id_rsa\w*|\.env|credentials|settings\.toml|"
                              r"\.netrc|\.pypirc)$")
KNOWN_SECRETS = (SECRET_PASSWORD, "local-demo-password")


def _build_context() -> list[Path]:
    """Every file on disk that .dockerignore lets into the build context (tracked or not)."""
    admitted = []
    for root, dirs, files in os.walk(REPO):
        rel_root = Path(root).relative_to(REPO)
        dirs[:] = [d for d in dirs if d not in (".git", ".venv")]  # both excluded (test_dockerfile.py)
        admitted += [Path(root) / f for f in files if not dockerignored(str(rel_root / f))]
    return admitted


def test_build_context_carries_no_credentials():
    context = _build_context()
    assert any(p.name == "entry.py" for p in context)  # the walk sees the code the image copies
    for path in [*context, DOCKERFILE]:
        rel = path.relative_to(REPO)
        assert not CREDENTIAL_FILES.search(path.name), f"{rel} looks like a credentials file"
        text = path.read_bytes().decode(errors="replace")
        for what, pattern in CREDENTIAL_PATTERNS.items():
            assert not pattern.search(text), f"{rel} holds what looks like a {what}"
        for value in KNOWN_SECRETS:
            assert value not in text, f"{rel} holds a test or demo secret"


def test_no_build_argument_or_image_variable_carries_a_credential():
    # Build arguments and ENV values are readable in the image's history and config.
    credential = re.compile(r"(?i)(secret|password|passphrase|token|private|credential|access_key)")
    names = [a.split("=", 1)[0] for a in instruction_args(DOCKERFILE, "ARG")]
    names += [a.split("=", 1)[0] for a in instruction_args(DOCKERFILE, "ENV")]
    script = (REPO / "container" / "build_push.sh").read_text()
    names += re.findall(r"--build-arg\s+([A-Za-z_][A-Za-z0-9_]*)", script)
    assert names and not [n for n in names if credential.search(n)], names
    assert "--secret" not in script  # a BuildKit secret would mean the build needs one
