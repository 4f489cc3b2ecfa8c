"""One point in time for the whole job: Snowflake Time Travel's ``AT(TIMESTAMP => ...)``.

``read_mode=scan`` reads one snapshot by construction (its one query). In ``read_mode=hash``
every host runs its own query, at its own moment: a table being loaded meanwhile would give
inconsistent shards. The hyperparameter ``snapshot`` pins every host's query to one time:

- ``none`` (default): no ``AT`` clause; each host reads the table as it is when its query runs.
- ``job_start``: the leader asks Snowflake for its current time (``SELECT CURRENT_TIMESTAMP()``)
  and broadcasts it; every host reads the table as it was then.
- an ISO-8601 timestamp with a timezone (``2026-11-01T12:00:00+00:00``): the table as it was
  then (reproducible re-training), in either read mode.

The time must lie within the table's Time Travel retention (``DATA_RETENTION_TIME_IN_DAYS``);
views and objects without Time Travel refuse ``AT``. Snowflake's error then becomes one
:class:`~training.errors.DataError` line that names the fix (:func:`time_travel_error`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from training.errors import DataError, HyperparameterError

NONE = "none"
JOB_START = "job_start"
EXAMPLE = "2026-11-01T12:00:00+00:00"


def parse_snapshot(text: str) -> str:
    """The setting as the job uses it: ``none``, ``job_start`` or a normalised ISO-8601 timestamp.

    Raises :class:`HyperparameterError` for anything else, or a timestamp without a timezone
    (Snowflake would read it in the session's timezone: not reproducible).
    """
    value = text.strip()
    if value.lower() in (NONE, JOB_START):
        return value.lower()
    moment = parse_timestamp(value)
    if moment is None:
        raise HyperparameterError(
            f"hyperparameter 'snapshot' must be {NONE}, {JOB_START} or an ISO-8601 timestamp with a timezone "
            f"(e.g. {EXAMPLE}), got {text[:60]!r}: fix its value"
        )
    if moment.tzinfo is None:
        raise HyperparameterError(
            f"hyperparameter 'snapshot' {text[:60]!r} has no timezone: add one (e.g. {value}+00:00 for UTC), so "
            "every host and every re-run reads the same moment"
        )
    return moment.isoformat()


def explicit_time(setting: str) -> str:
    """The timestamp of an explicit ``snapshot`` setting; empty for ``none`` and ``job_start``."""
    return "" if setting in (NONE, JOB_START) else setting


_ISO = re.compile(r"(?P<time>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<fraction>\d{1,6}))?"
                  r"(?P<zone>[Zz]|[+-]\d{2}:\d{2})?")


def parse_timestamp(text: str) -> datetime | None:
    """``YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]][Z|+HH:MM]`` as a datetime (naive without a zone), or None.

    One grammar on every Python: 3.10 (the container's) reads neither ``Z`` nor a fraction of other
    than 3 or 6 digits, which 3.11 does.
    """
    match = _ISO.fullmatch(text.strip())
    if match is None:
        return None
    zone = match["zone"] or ""
    value = match["time"] + ("." + match["fraction"].ljust(6, "0") if match["fraction"] else "")
    try:
        return datetime.fromisoformat(value + ("+00:00" if zone in ("Z", "z") else zone))
    except ValueError:  # a month 13, a 25th hour
        return None


def current_time(conn: Any) -> str:
    """Snowflake's current time (the leader's ``job_start``), ISO 8601 with its offset.

    Snowflake's clock, not this host's: the time is compared with the table's history there.
    """
    cursor = conn.cursor()
    try:
        cursor.execute("SELECT CURRENT_TIMESTAMP()")
        moment = cursor.fetchone()[0]
    finally:
        cursor.close()
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise RuntimeError(f"CURRENT_TIMESTAMP() returned {moment!r}, not a time with a timezone")
    return moment.isoformat()


def time_travel_error(err: Exception, table: str, snapshot_at: str) -> DataError | None:
    """Snowflake's refusal of ``AT(TIMESTAMP => ...)`` as one line with the fix; None for other errors.

    Snowflake answers "Time travel data is not available for table ..." for a time before the
    retention period (or the table's creation, or in the future), and refuses Time Travel on a
    view or an object type without it.
    """
    text = " ".join(str(getattr(err, "raw_msg", "") or getattr(err, "msg", "") or err).split())
    if not snapshot_at or "time travel" not in text.lower():
        return None
    said = text.split(". ")[0].rstrip(".")[:160]  # its first sentence says what; the rest is ours to say
    return DataError(
        f"table {table!r} has no Time Travel data at snapshot {snapshot_at} (Snowflake: {said}): set "
        "'snapshot' to a past time within the table's DATA_RETENTION_TIME_IN_DAYS, or snapshot=none for a view "
        "or an object without Time Travel"
    )
