"""The Snowflake secret: each auth method parses; every defect names the field, never a value."""

import json

import pytest

from tests import keys
from training.errors import CredentialsError
from training.read.credentials import (
    AUTH_METHODS,
    ENDPOINT_FIELDS,
    REQUIRED_FIELDS,
    parse_connection,
    parse_secret,
)

SECRET_VALUE = "Zq-distinctive-s3cret-7731"
BASE = {"account": "org-acct", "user": "svc", "warehouse": "WH", "database": "DB", "schema": "S", "role": "R"}


def _parse(**fields):
    return parse_secret(json.dumps({**BASE, **fields}), "sf/secret")


def test_password_secret():
    kwargs = _parse(auth="password", password=SECRET_VALUE).connect_kwargs()
    assert kwargs["password"] == SECRET_VALUE and kwargs["account"] == "org-acct" and kwargs["role"] == "R"
    assert kwargs["authenticator"] == "SNOWFLAKE"  # the connector's default, now said explicitly


def test_keypair_is_handed_over_as_der_bytes():
    for passphrase in (None, SECRET_VALUE):
        fields = {"auth": "keypair", "private_key": keys.pem(passphrase)}
        if passphrase:
            fields["private_key_passphrase"] = passphrase
        kwargs = _parse(**fields).connect_kwargs()
        assert kwargs["private_key"] == keys.der() and kwargs["authenticator"] == "SNOWFLAKE_JWT"
        assert "private_key_passphrase" not in kwargs and "password" not in kwargs


def test_pat_uses_the_programmatic_access_token_authenticator():
    kwargs = _parse(auth="pat", token=SECRET_VALUE).connect_kwargs()
    assert kwargs["authenticator"] == "PROGRAMMATIC_ACCESS_TOKEN" and kwargs["token"] == SECRET_VALUE


def test_endpoint_override_for_privatelink_or_local():
    kwargs = _parse(auth="pat", token="t", host="127.0.0.1", port="8080", protocol="http").connect_kwargs()
    assert (kwargs["host"], kwargs["port"], kwargs["protocol"]) == ("127.0.0.1", 8080, "http")


def test_repr_hides_secret_values():
    creds = _parse(auth="password", password=SECRET_VALUE)
    assert SECRET_VALUE not in repr(creds) and SECRET_VALUE not in str(creds)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not json " + SECRET_VALUE, "is not a JSON object"),
        (json.dumps([SECRET_VALUE]), "is not a JSON object"),
        (json.dumps({**BASE, "password": SECRET_VALUE}), "has no 'auth' field"),
        (json.dumps({**{k: v for k, v in BASE.items() if k != "warehouse"}, "auth": "password",
                     "password": SECRET_VALUE}), "has no 'warehouse' field"),
        (json.dumps({**BASE, "auth": "oauth", "password": SECRET_VALUE}), "'auth' names an unknown method"),
        (json.dumps({**BASE, "auth": "password"}), "has no 'password' field"),
        (json.dumps({**BASE, "auth": "keypair", "private_key": "garbage " + SECRET_VALUE}), "cannot be read"),
        (json.dumps({**BASE, "auth": "keypair", "private_key": keys.pem("right")}), "no 'private_key_passphrase'"),
        (json.dumps({**BASE, "auth": "keypair", "private_key": keys.pem("right"),
                     "private_key_passphrase": SECRET_VALUE}), "cannot be read"),
        (json.dumps({**BASE, "auth": "keypair", "private_key": keys.pem(),
                     "private_key_passphrase": SECRET_VALUE}), "unencrypted private key"),
    ],
)
def test_defects_name_the_field_and_never_the_value(text, fragment):
    with pytest.raises(CredentialsError) as info:
        parse_secret(text, "sf/secret")
    message = str(info.value)
    assert fragment in message and "sf/secret" in message
    assert SECRET_VALUE not in message and "\n" not in message


# --- every entry of the auth table ----------------------------------------------------------------

PASSPHRASE = "Zq-passphrase-4410"
SAMPLES = {"password": "Zq-password-5521", "private_key": keys.pem(PASSPHRASE), "private_key_passphrase": PASSPHRASE,
           "token": "Zq-token-9902"}
"""A distinctive, valid value for every field any method reads (a new method's fields need one here)."""


def _connector_authenticators() -> set[str]:
    from snowflake.connector import network

    return {network.DEFAULT_AUTHENTICATOR, network.KEY_PAIR_AUTHENTICATOR, network.PROGRAMMATIC_ACCESS_TOKEN,
            network.OAUTH_AUTHENTICATOR, network.WORKLOAD_IDENTITY_AUTHENTICATOR}


def test_every_field_of_every_method_has_a_sample():
    assert {name for method in AUTH_METHODS.values() for name in method.fields} <= set(SAMPLES)


@pytest.mark.parametrize("auth", list(AUTH_METHODS))
def test_each_method_checks_each_required_field_by_name(auth):
    for missing in AUTH_METHODS[auth].required:
        fields = {name: value for name, value in SAMPLES.items() if name != missing}
        with pytest.raises(CredentialsError) as info:
            _parse(auth=auth, **fields)
        assert str(info.value) == f"secret 'sf/secret' uses auth {auth!r} but has no {missing!r} field: add it"


@pytest.mark.parametrize("auth", list(AUTH_METHODS))
def test_each_method_builds_its_authenticator_and_never_another_methods_credentials(auth):
    method = AUTH_METHODS[auth]
    # the secret holds every method's fields: only this method's may reach the connector
    kwargs = _parse(auth=auth.upper(), **SAMPLES).connect_kwargs()
    assert kwargs["authenticator"] == method.authenticator and method.authenticator in _connector_authenticators()
    others = {name for other in AUTH_METHODS.values() for name in other.fields} - set(method.fields)
    assert not others & set(kwargs), (auth, sorted(kwargs))
    shown = " ".join(map(str, kwargs.values()))
    assert not [name for name in others if SAMPLES[name] in shown], auth
    credentials = set(kwargs) - {*REQUIRED_FIELDS, *ENDPOINT_FIELDS, "authenticator"}
    assert credentials, auth  # it hands the connector something of its own to sign in with


def test_methods_sign_in_differently():
    authenticators = [method.authenticator for method in AUTH_METHODS.values()]
    assert len(set(authenticators)) == len(authenticators)


def test_an_unknown_method_lists_every_entry():
    with pytest.raises(CredentialsError) as info:
        _parse(auth="oauth", **SAMPLES)
    assert str(info.value).endswith(f"names an unknown method: use one of {', '.join(AUTH_METHODS)}")


CONNECTION = {"account": "org-acct", "warehouse": "WH", "database": "DB", "schema": "S", "role": "R",
              "auth": "workload_identity"}


def test_workload_identity_needs_no_secret_and_no_user():
    kwargs = parse_connection(json.dumps(CONNECTION)).connect_kwargs()
    assert kwargs["authenticator"] == "WORKLOAD_IDENTITY" and kwargs["workload_identity_provider"] == "AWS"
    assert "user" not in kwargs and not {"password", "token", "private_key"} & set(kwargs)
    assert parse_connection(json.dumps({**CONNECTION, "user": "svc"})).connect_kwargs()["user"] == "svc"


@pytest.mark.parametrize(("change", "fragment"), [
    ({"password": SECRET_VALUE}, "SNOWFLAKE_CONNECTION holds a 'password' field: a secret never goes in the job's "
                                 "environment"),
    ({"token": SECRET_VALUE}, "holds a 'token' field"),
    ({"Password": SECRET_VALUE}, "holds a 'Password' field"),  # any field it does not use, whatever its case
    ({"oauth_token": SECRET_VALUE}, "holds a 'oauth_token' field"),
    ({"auth": "password"}, "names auth 'password', which needs a secret: store it in Secrets Manager and pass "
                           "SNOWFLAKE_SECRET_ID"),
    ({"role": ""}, "SNOWFLAKE_CONNECTION has no 'role' field: add it"),
])
def test_a_connection_that_would_put_a_secret_in_the_environment_is_refused(change, fragment):
    with pytest.raises(CredentialsError) as info:
        parse_connection(json.dumps({**CONNECTION, **change}))
    assert fragment in str(info.value) and SECRET_VALUE not in str(info.value)
