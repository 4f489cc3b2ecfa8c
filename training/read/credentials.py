"""Snowflake credentials: read from AWS Secrets Manager, or workload identity with no secret at all.

The job's environment carries only the secret's *id* (``SNOWFLAKE_SECRET_ID``); the secret holds
JSON naming an explicit auth method::

    {"account": "...", "user": "...", "warehouse": "...", "database": "...", "schema": "...",
     "role": "...", "auth": "password" | "keypair" | "pat",
     "password": "..."                                   # auth = password
     "private_key": "-----BEGIN PRIVATE KEY-----...",    # auth = keypair (PEM)
     "private_key_passphrase": "..."                     # optional, keypair
     "token": "..."}                                     # auth = pat (programmatic access token)

Optional ``host``, ``port`` and ``protocol`` override the endpoint (PrivateLink, or the local
Snowflake of the local mode).

Workload identity federation needs no secret: the connector signs an STS ``GetCallerIdentity``
request with the job's own IAM role and sends that as the proof (``authenticator=
WORKLOAD_IDENTITY``, ``workload_identity_provider=AWS``). Its configuration is plain JSON in the
job's environment (``SNOWFLAKE_CONNECTION``: account, warehouse, database, schema, role, optional
user, ``"auth": "workload_identity"``); a secret field there is refused, since the environment is
shown by ``DescribeTrainingJob``. Messages name fields and fixes, never values: the secret's values
stay inside :class:`SnowflakeCredentials`, whose ``repr`` hides them.

Each auth method is one entry of :data:`AUTH_METHODS`: the fields it needs and the connector
arguments it builds. A method is supported when, and only when, it has an entry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from training.contract import CONNECTION_ENV, SECRET_ID_ENV
from training.errors import ConfigError, CredentialsError

log = logging.getLogger(__name__)


REQUIRED_FIELDS = ("account", "user", "warehouse", "database", "schema", "role", "auth")
ENDPOINT_FIELDS = ("host", "port", "protocol")


@dataclass(frozen=True)
class AuthMethod:
    """One way to sign in: the secret fields it needs and the connector arguments it builds."""

    authenticator: str
    """The connector's ``authenticator`` for this method (always passed, never left to inference)."""
    required: tuple[str, ...]
    """Secret fields the method cannot sign in without; a missing one fails naming it."""
    build: Callable[[Mapping[str, str], str], dict[str, Any]]
    """(the method's secret fields, the secret's id) -> its credential arguments for the connector."""
    optional: tuple[str, ...] = ()
    """Secret fields the method uses when present."""
    needs_user: bool = True
    """False: Snowflake finds the user from the proof (workload identity); ``user`` may be left out."""

    @property
    def fields(self) -> tuple[str, ...]:
        """Every secret field this method may read (nothing else of the secret reaches the connector)."""
        return (*self.required, *self.optional)


def _password_args(secrets: Mapping[str, str], secret_id: str) -> dict[str, Any]:
    return {"password": secrets["password"]}


def _keypair_args(secrets: Mapping[str, str], secret_id: str) -> dict[str, Any]:
    return {"private_key": _decode_private_key(secrets["private_key"], secrets.get("private_key_passphrase"),
                                               secret_id)}


def _token_args(secrets: Mapping[str, str], secret_id: str) -> dict[str, Any]:
    return {"token": secrets["token"]}


def _workload_identity_args(secrets: Mapping[str, str], secret_id: str) -> dict[str, Any]:
    return {"workload_identity_provider": "AWS"}  # the job's role signs; AWS_REGION names the STS region


AUTH_METHODS: dict[str, AuthMethod] = {
    "password": AuthMethod("SNOWFLAKE", ("password",), _password_args),
    "keypair": AuthMethod("SNOWFLAKE_JWT", ("private_key",), _keypair_args, optional=("private_key_passphrase",)),
    "pat": AuthMethod("PROGRAMMATIC_ACCESS_TOKEN", ("token",), _token_args),
    "workload_identity": AuthMethod("WORKLOAD_IDENTITY", (), _workload_identity_args, needs_user=False),
}
"""The secret's ``auth`` value -> its method (the connector's authenticator names:
https://docs.snowflake.com/en/developer-guide/python-connector/python-connector-api#connect)."""


@dataclass(frozen=True)
class SnowflakeCredentials:
    """Where and how to sign in to Snowflake; ``repr`` never shows secret values."""

    account: str
    user: str
    warehouse: str
    database: str
    schema: str
    role: str
    auth: str
    _secrets: dict[str, str] = field(repr=False)
    endpoint: dict[str, Any] = field(default_factory=dict)
    secret_id: str = "the secret"

    def connect_kwargs(self) -> dict[str, Any]:
        """Arguments for ``snowflake.connector.connect`` (secret values included: never log them)."""
        method = AUTH_METHODS[self.auth]
        user = {"user": self.user} if self.user else {}
        return {
            "account": self.account, **user, "warehouse": self.warehouse,
            "database": self.database, "schema": self.schema, "role": self.role, **self.endpoint,
            "authenticator": method.authenticator, **method.build(self._secrets, self.secret_id),
        }


def read_secret(secret_id: str, client: Any) -> SnowflakeCredentials:
    """Fetch ``secret_id`` with a boto3 Secrets Manager ``client`` and parse it."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client.get_secret_value(SecretId=secret_id)
    except ClientError as err:
        raise CredentialsError(_client_error_message(secret_id, err)) from None
    except BotoCoreError as err:
        raise CredentialsError(
            f"cannot reach AWS Secrets Manager to read secret {secret_id!r} ({type(err).__name__}): "
            "check the region (AWS_REGION) and that the job's network can reach Secrets Manager"
        ) from None
    text = response.get("SecretString")
    if text is None:
        raise CredentialsError(
            f"secret {secret_id!r} holds binary data: store the Snowflake credentials as a JSON SecretString"
        )
    return parse_secret(text, secret_id)


def _client_error_message(secret_id: str, err: Any) -> str:
    code = err.response.get("Error", {}).get("Code", "")
    if code == "ResourceNotFoundException":
        return (f"secret {secret_id!r} not found in Secrets Manager: check {SECRET_ID_ENV} "
                "and the job's region")
    if code in ("AccessDeniedException", "AccessDenied"):
        return (f"access denied reading secret {secret_id!r}: grant the job's execution role "
                "secretsmanager:GetSecretValue on it (and kms:Decrypt on its key)")
    if code == "DecryptionFailure":
        return (f"cannot decrypt secret {secret_id!r}: grant the job's execution role kms:Decrypt "
                "on the secret's KMS key")
    return f"cannot read secret {secret_id!r} ({code or 'error'}): check {SECRET_ID_ENV} and the role's permissions"


def parse_secret(text: str, secret_id: str = "the secret") -> SnowflakeCredentials:
    """Parse the secret's JSON text; raise :class:`CredentialsError` naming the field and the fix."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise CredentialsError(
            f"secret {secret_id!r} is not a JSON object: store the Snowflake credentials as JSON "
            f"with the fields {', '.join(REQUIRED_FIELDS)}"
        ) from None
    return _credentials(data, f"secret {secret_id!r}", secret_id)


def _credentials(data: dict[str, Any], where: str, secret_id: str) -> SnowflakeCredentials:
    """Credentials from a parsed JSON object; ``where`` names it in messages."""
    method = AUTH_METHODS.get(str(data.get("auth") or "").lower())
    required = [name for name in REQUIRED_FIELDS if name != "user" or method is None or method.needs_user]
    missing = [name for name in required if not _text(data.get(name))]
    if missing:
        raise CredentialsError(f"{where} has no {missing[0]!r} field: add it (required fields: {', '.join(required)})")
    auth = _auth_method(data, where)
    secrets = {name: str(data[name]) for name in AUTH_METHODS[auth].fields if _text(data.get(name))}
    creds = SnowflakeCredentials(
        **{name: str(data.get(name) or "") for name in REQUIRED_FIELDS if name != "auth"},
        auth=auth, _secrets=secrets, endpoint=_endpoint(data, where), secret_id=secret_id,
    )
    creds.connect_kwargs()  # build them now: a method that cannot (a bad key) fails before any network call
    return creds


def _auth_method(data: dict[str, Any], where: str) -> str:
    """The ``auth`` field (lower case), checked against :data:`AUTH_METHODS` with its required fields."""
    auth = str(data["auth"]).lower()
    if auth not in AUTH_METHODS:
        raise CredentialsError(f"{where} field 'auth' names an unknown method: use one of {', '.join(AUTH_METHODS)}")
    absent = [name for name in AUTH_METHODS[auth].required if not _text(data.get(name))]
    if absent:
        raise CredentialsError(f"{where} uses auth {auth!r} but has no {absent[0]!r} field: add it")
    return auth


SECRETLESS_METHODS = tuple(name for name, method in AUTH_METHODS.items() if not method.fields)
"""Methods whose configuration holds no secret: the only ones allowed in the job's environment."""


def parse_connection(text: str) -> SnowflakeCredentials:
    """``SNOWFLAKE_CONNECTION``'s JSON: where to sign in with a method that needs no secret."""
    where = CONNECTION_ENV
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise CredentialsError(f"{where} is not a JSON object: set it to JSON with the fields account, warehouse, "
                               f"database, schema, role and \"auth\": \"{SECRETLESS_METHODS[0]}\"")
    allowed = (*REQUIRED_FIELDS, *ENDPOINT_FIELDS)
    other = sorted(str(name) for name in data if name not in allowed)  # Password, pwd, oauth_token...
    if other:  # never echo the value: it may be a credential
        raise CredentialsError(f"{where} holds a {other[0]!r} field: a secret never goes in the job's environment "
                               f"(DescribeTrainingJob shows it); keep only {', '.join(allowed)}, and keep secrets in "
                               f"Secrets Manager ({SECRET_ID_ENV})")
    if _text(data.get("auth")) and str(data["auth"]).lower() not in SECRETLESS_METHODS:
        raise CredentialsError(f"{where} names auth {str(data['auth']).lower()!r}, which needs a secret: store it in "
                               f"Secrets Manager and pass {SECRET_ID_ENV}, or use auth "
                               f"{' or '.join(SECRETLESS_METHODS)}")
    return _credentials(data, where, where)


def _text(value: Any) -> bool:
    return isinstance(value, (str, int)) and str(value).strip() != ""


def _endpoint(data: dict[str, Any], where: str) -> dict[str, Any]:
    endpoint: dict[str, Any] = {}
    if _text(data.get("host")):
        endpoint["host"] = str(data["host"])
    if data.get("port") is not None:
        try:
            endpoint["port"] = int(data["port"])
        except (TypeError, ValueError):
            raise CredentialsError(f"{where} field 'port' is not a number: fix it") from None
    if _text(data.get("protocol")):
        endpoint["protocol"] = str(data["protocol"])
    return endpoint


def _decode_private_key(pem: str, passphrase: str | None, secret_id: str) -> bytes:
    """PEM text -> DER (PKCS#8) bytes, the form the connector takes; names the fix on failure."""
    from cryptography.hazmat.primitives import serialization

    password = passphrase.encode() if passphrase else None
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=password)
    except TypeError:
        raise CredentialsError(
            f"secret {secret_id!r} holds an encrypted private key but no 'private_key_passphrase': add it"
            if password is None else
            f"secret {secret_id!r} holds an unencrypted private key but sets 'private_key_passphrase': remove it"
        ) from None
    except ValueError:
        raise CredentialsError(
            f"secret {secret_id!r} field 'private_key' cannot be read: store a PEM private key (PKCS#8) "
            "and, if it is encrypted, the right 'private_key_passphrase'"
        ) from None
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class SignIn:
    """How the job signs in to Snowflake, as its environment says: a secret's id, or a workload
    identity connection (JSON without secrets). Exactly one of the two."""

    secret_id: str = ""
    connection: str = ""

    def credentials(self) -> SnowflakeCredentials:
        """The credentials: parsed from the connection, or read from Secrets Manager (boto3)."""
        secret_id, connection = self.secret_id.strip(), self.connection.strip()
        if secret_id and connection:
            raise ConfigError(f"both {SECRET_ID_ENV} and {CONNECTION_ENV} are set: pass one (the secret's id, or the "
                              "workload identity connection)")
        if connection:
            return parse_connection(connection)
        if not secret_id:
            raise ConfigError(f"{SECRET_ID_ENV} is not set: pass the Snowflake secret's id or ARN in the job's "
                              f"environment (or {CONNECTION_ENV} to sign in with the job's role: workload identity)")
        import boto3

        return read_secret(secret_id, boto3.client("secretsmanager"))

