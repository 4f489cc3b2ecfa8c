"""Time Travel's ``AT(TIMESTAMP => ...)`` on the local Snowflake, answered with the table as it is.

fakesnow 0.12.1 cannot run ``SELECT ... FROM t AT(TIMESTAMP => '...'::TIMESTAMP_LTZ)`` (DuckDB
answers "Catalog type does not support time travel"), and keeps no history to answer it from.
:func:`install` makes the server's query handler strip the clause before fakesnow sees it, so a
job with ``snapshot`` set runs against the stand-in; it refuses a time in the future as
Snowflake does (error 000707, "Time travel data is not available for table ...").

What it still does not do: it has no history, so any past time reads the table's *current* rows
(a load after that time shows); it knows no retention period or creation time, so no past time is
refused; only a quoted literal (the connector's client-side binding of ``%(name)s``), optionally
cast to a TIMESTAMP type, is understood: ``OFFSET =>``, ``STATEMENT =>``, ``BEFORE(...)`` and
server-side binds reach fakesnow unchanged (and fail there); the clause is found by a pattern,
so the same text inside a string literal would be stripped too.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from launch.local import query_route
from launch.local.query_route import Refused

_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
AT_TIMESTAMP = re.compile(
    rf"(?P<table>{_NAME}(?:\.{_NAME}){{0,2}})\s+AT\s*\(\s*TIMESTAMP\s*=>\s*'(?P<value>(?:[^']|'')*)'"
    r"(?:\s*::\s*TIMESTAMP(?:_LTZ|_NTZ|_TZ)?)?\s*\)",
    re.IGNORECASE,
)
"""``<table> AT(TIMESTAMP => '<literal>'[::TIMESTAMP_*])``."""
NOT_AVAILABLE = "000707"
"""Snowflake's error code for a Time Travel time it has no data for."""


def strip_at(sql: str, now: datetime | None = None) -> str:
    """``sql`` without its ``AT(TIMESTAMP => ...)`` clauses; :class:`Refused` for a time in the future."""
    now = now or datetime.now(timezone.utc)

    def check(match: re.Match[str]) -> str:
        value = match.group("value").replace("''", "'")
        moment = _timestamp(value)
        if moment is None:
            raise Refused("100035", f"Timestamp '{value}' is not recognized", "02000")
        if moment > now:
            table = match.group("table").split(".")[-1].strip('"')
            raise Refused(NOT_AVAILABLE, f"Time travel data is not available for table {table}. The requested time "
                                         "is either beyond the allowed time travel period or before the object "
                                         "creation time.", "02000")
        return match.group("table")

    return AT_TIMESTAMP.sub(check, sql)


def _timestamp(text: str) -> datetime | None:
    value = text.strip()
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # the local server's zone is UTC


def install(app: Any) -> None:
    """Make fakesnow's server ``app`` (Starlette) strip ``AT(TIMESTAMP => ...)`` before running a query."""

    async def rewrite(_request: Any, body: dict[str, Any]) -> bool:
        sql = body.get("sqlText") or ""
        if not AT_TIMESTAMP.search(sql):
            return False
        body["sqlText"] = strip_at(sql)
        return True

    query_route.wrap(app, rewrite)
