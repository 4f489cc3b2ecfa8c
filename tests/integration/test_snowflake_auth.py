"""Each auth method reaches the real connector with the right arguments, over its real connect path.

fakesnow accepts any credentials, so the checks read what the connector was given: its
authenticator, and the key or token it holds after signing in.
"""

import json

import pytest

from tests import keys
from tests.helpers import SECRET_PASSWORD
from training.credentials import parse_secret
from training.snowflake import connect

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
