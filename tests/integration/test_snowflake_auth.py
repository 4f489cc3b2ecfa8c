"""Each auth method reaches the real connector with the right arguments, over its real connect path.

fakesnow accepts any credentials, so the checks read what the connector was given: its
authenticator, and the key or token it holds after signing in.
"""

import json

import pytest

from tests import keys
from tests.helpers import SECRET_PASSWORD
from training.read.credentials import parse_connection, parse_secret
from training.read.snowflake import connect

pytestmark = pytest.mark.slow


def _connect(stack, **fields):
    return connect(parse_secret(json.dumps(stack.snowflake_secret(**fields)), "test/auth"), "test-tag")


def _query_one(conn):
    cursor = conn.cursor()
    cursor.execute("SELECT 1")
    return cursor.fetchone()[0]


def test_password(stack, monkeypatch):
    # The connector forgets the password after sign-in: record the login body it sends instead.
    from snowflake.connector.auth.default import AuthByDefault

    sent = {}
    original = AuthByDefault.update_body

    def spy(self, body):
        original(self, body)
        sent.update(body["data"])

    monkeypatch.setattr(AuthByDefault, "update_body", spy)
    conn = _connect(stack, auth="password", password=SECRET_PASSWORD)
    try:
        assert _query_one(conn) == 1
        assert conn._authenticator == "SNOWFLAKE"
        assert sent["PASSWORD"] == SECRET_PASSWORD
    finally:
        conn.close()


@pytest.mark.parametrize("passphrase", [None, "key-passphrase-1"])
def test_keypair_hands_the_decoded_key(stack, passphrase):
    fields = {"auth": "keypair", "private_key": keys.pem(passphrase), "password": None}
    if passphrase:
        fields["private_key_passphrase"] = passphrase
    conn = _connect(stack, **fields)
    try:
        assert _query_one(conn) == 1
        assert conn._authenticator == "SNOWFLAKE_JWT"
        assert type(conn.auth_class).__name__ == "AuthByKeyPair"
        assert conn._private_key == keys.der()  # DER bytes, not the PEM text
        assert not conn._password
    finally:
        conn.close()


def test_pat(stack):
    conn = _connect(stack, auth="pat", token=SECRET_PASSWORD, password=None)
    try:
        assert _query_one(conn) == 1
        assert conn._authenticator == "PROGRAMMATIC_ACCESS_TOKEN"
        assert conn._token == SECRET_PASSWORD and not conn._password
    finally:
        conn.close()


def test_workload_identity_signs_with_the_jobs_role(stack, monkeypatch):
    """No secret: the connector signs STS GetCallerIdentity with the process's AWS credentials (here the
    local stack's) and sends that; fakesnow accepts any sign-in, so the check reads what was signed."""
    import base64

    from snowflake.connector.auth.workload_identity import AuthByWorkloadIdentity

    sent = {}  # the connector forgets the proof after sign-in: record the login body it sends
    original = AuthByWorkloadIdentity.update_body

    def spy(self, body):
        original(self, body)
        sent.update(body["data"])

    monkeypatch.setattr(AuthByWorkloadIdentity, "update_body", spy)
    for name, value in stack.aws_env().items():
        monkeypatch.setenv(name, value)
    # the connector sends the role's proof only to Snowflake hosts; the local one is added for the test
    monkeypatch.setenv("SNOWFLAKE_WIF_ALLOWED_HOST_SUFFIXES", "127.0.0.1")
    secret = stack.snowflake_secret()
    connection = {k: secret[k] for k in ("account", "warehouse", "database", "schema", "role", "host", "port",
                                         "protocol")}
    conn = connect(parse_connection(json.dumps({**connection, "auth": "workload_identity"})), "test-tag")
    try:
        assert _query_one(conn) == 1
        assert conn._authenticator == "WORKLOAD_IDENTITY" and not conn._password
        assert sent["AUTHENTICATOR"] == "WORKLOAD_IDENTITY" and sent["PROVIDER"] == "AWS"
        signed = json.loads(base64.b64decode(sent["TOKEN"]))
        assert "GetCallerIdentity" in signed["url"] and signed["method"] == "POST"
        authorization = {k.lower(): v for k, v in signed["headers"].items()}["authorization"]
        assert f"Credential={stack.aws_env()['AWS_ACCESS_KEY_ID']}/" in authorization  # the role's own key
        assert f"/{stack.aws_env()['AWS_REGION']}/sts/aws4_request" in authorization  # signed for the job's region
    finally:
        conn.close()
