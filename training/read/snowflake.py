"""Connecting to Snowflake and describing a table, with bounded waits and actionable errors.

Identifiers that users give (table, columns) are validated and quoted here; nothing user-given
is ever formatted raw into SQL. Unquoted names follow Snowflake's rule (they mean the upper-case
name); a double-quoted name is taken verbatim, so ``"My Col"`` reaches a case-sensitive column.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from training.errors import HyperparameterError, SnowflakeError
from training.read.credentials import SnowflakeCredentials

log = logging.getLogger(__name__)


_BARE = r"[A-Za-z_][A-Za-z0-9_$]*"
_QUOTED = r'"[^"\x00]+"'
IDENTIFIER = rf"(?:{_BARE}|{_QUOTED})"
"""One Snowflake identifier as written: a bare name or a double-quoted one."""
_TABLE = re.compile(rf"{IDENTIFIER}(?:\.{IDENTIFIER}){{0,2}}")
_PARTS = re.compile(IDENTIFIER)

TYPE_NAMES = ("FIXED", "REAL", "TEXT", "DATE", "TIMESTAMP", "VARIANT", "TIMESTAMP_LTZ", "TIMESTAMP_TZ",
              "TIMESTAMP_NTZ", "OBJECT", "ARRAY", "BINARY", "TIME", "BOOLEAN", "GEOGRAPHY", "GEOMETRY", "VECTOR",
              "MAP", "FILE", "INTERVAL_YEAR_MONTH", "INTERVAL_DAY_TIME")
"""Snowflake's result type names by type code (``snowflake.connector.constants.FIELD_TYPES``, in
order; a test keeps the two equal). FIXED is NUMBER/DECIMAL/INT, REAL is FLOAT, TEXT is VARCHAR."""


def quote_part(name: str, what: str) -> str:
    """Validate one identifier and return it quoted for SQL (unquoted names are upper-cased)."""
    name = name.strip()
    if re.fullmatch(_BARE, name):
        return f'"{name.upper()}"'
    if re.fullmatch(_QUOTED, name):
        return name
    raise HyperparameterError(
        f"{what} {name[:60]!r} is not a valid Snowflake identifier: use letters, digits, _ and $ "
        "(starting with a letter or _), or a double-quoted name without quotes inside"
    )


def quote_table(name: str) -> str:
    """Validate ``[database.][schema.]table`` and return it quoted part by part."""
    name = name.strip()
    if not _TABLE.fullmatch(name):
        raise HyperparameterError(
            f"table {name[:60]!r} is not a valid Snowflake table name: use NAME, SCHEMA.NAME or "
            "DATABASE.SCHEMA.NAME with letters, digits, _ and $ (or double-quoted parts)"
        )
    return ".".join(quote_part(part, "table") for part in _PARTS.findall(name))


def table_parts(name: str) -> list[str]:
    """``[database.][schema.]table`` as the names Snowflake stores (validated like :func:`quote_table`)."""
    quote_table(name)
    return [unquoted(quote_part(part, "table")) for part in _PARTS.findall(name.strip())]


def quote_column(name: str) -> str:
    """Quote a column name exactly as Snowflake reported it (doubling any quote inside)."""
    return '"' + name.replace('"', '""') + '"'


def unquoted(quoted: str) -> str:
    """The name Snowflake reports for a quoted identifier (``"PRICE"`` -> ``PRICE``)."""
    return quoted[1:-1]


@dataclass(frozen=True)
class Column:
    """One column of the table as Snowflake describes it."""

    name: str
    type_code: int

    @property
    def type_name(self) -> str:
        """Snowflake's name of the column's type (see :data:`TYPE_NAMES`)."""
        return TYPE_NAMES[self.type_code] if 0 <= self.type_code < len(TYPE_NAMES) else f"TYPE{self.type_code}"


@dataclass(frozen=True)
class SnowflakeTimeouts:
    """The connector's bounded waits, in whole seconds: a wrong account or a dead network fails in
    bounded time. Read from the job's environment with the rest of the container contract
    (:class:`container.env.TrainingEnv`)."""

    login: int = 60
    """Sign-in (:data:`~training.contract.LOGIN_TIMEOUT_ENV`)."""
    network: int = 300
    """How long the connector keeps retrying one request (:data:`~training.contract.NETWORK_TIMEOUT_ENV`)."""


DEFAULT_TIMEOUTS = SnowflakeTimeouts()


def connect(creds: SnowflakeCredentials, query_tag: str, timeouts: SnowflakeTimeouts = DEFAULT_TIMEOUTS) -> Any:
    """Open a connection with bounded sign-in and network waits; errors name the likely causes."""
    import snowflake.connector
    from snowflake.connector.errors import DatabaseError, Error

    kwargs = creds.connect_kwargs()
    kwargs.update(
        login_timeout=timeouts.login,
        network_timeout=timeouts.network,
        session_parameters={"QUERY_TAG": query_tag},
        application="sagemaker-xgboost-snowflake",
    )
    try:
        return snowflake.connector.connect(**kwargs)
    except DatabaseError as err:
        raise SnowflakeError(_connect_message(creds, err)) from None
    except Error as err:
        raise SnowflakeError(
            f"cannot connect to Snowflake account {creds.account!r} ({type(err).__name__}, "
            f"errno {getattr(err, 'errno', '?')}): check the secret's account and auth fields"
        ) from None


def _connect_message(creds: SnowflakeCredentials, err: Any) -> str:
    text = str(getattr(err, "raw_msg", "") or "").lower()
    rejected = "incorrect username or password" in text or "jwt" in text or "token" in text or "authenticat" in text
    if rejected and creds.auth == "workload_identity":
        return (f"Snowflake rejected the job's role on account {creds.account!r} (auth workload_identity): give a "
                "Snowflake service user WORKLOAD_IDENTITY = (TYPE = AWS ARN = '<the job's execution role ARN>') "
                "(ALTER USER ... SET WORKLOAD_IDENTITY), and set AWS_REGION in the job")
    if rejected:
        return (f"Snowflake rejected the credentials of user {creds.user!r} on account {creds.account!r} "
                f"(auth {creds.auth}): check the secret's user and {creds.auth} fields")
    return (f"cannot reach Snowflake account {creds.account!r} (errno {getattr(err, 'errno', '?')}): "
            "check that the job's network can reach Snowflake (VPC subnets need a NAT gateway or "
            "PrivateLink) and that the account identifier is right (ORGNAME-ACCOUNTNAME)")


def describe_table(conn: Any, table_sql: str) -> list[Column] | None:
    """The table's columns, from a query that reads no rows; None if the table does not exist
    (or the role cannot see it)."""
    from snowflake.connector.errors import ProgrammingError

    cursor = conn.cursor()
    try:
        cursor.execute(f"SELECT * FROM {table_sql} LIMIT 0")  # noqa: S608  (validated, quoted identifier)
        return [Column(meta.name, meta.type_code) for meta in cursor.description]
    except ProgrammingError as err:
        if getattr(err, "errno", None) == 2003 or "does not exist" in str(err).lower():
            return None
        raise
    finally:
        cursor.close()


def count_distinct(conn: Any, table_sql: str, column: str) -> int:
    """Distinct non-NULL values of one column (one aggregate query; only when a job must say how many)."""
    cursor = conn.cursor()
    try:
        cursor.execute(f"SELECT COUNT(DISTINCT {quote_column(column)}) FROM {table_sql}")  # noqa: S608  (quoted)
        return int(cursor.fetchone()[0])
    finally:
        cursor.close()
