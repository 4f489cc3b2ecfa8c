"""``read_mode=hash``: each host queries its own shard (the rows whose key hashes to its rank), with retries.

The query and its hash are :class:`~training.read.plan.ShardPlan`'s; the rows are spilled by
:mod:`training.read.spill`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.errors import SnowflakeError
from training.read.options import ReadOptions
from training.read.plan import ShardPlan
from training.read.spill import Shard, log_fetched, new_shard, spill_files, spill_table

log = logging.getLogger(__name__)

FETCH_ATTEMPTS = 3
"""A shard whose connection drops is fetched again from a clean start this many times in all."""
RETRY_PAUSE_SECONDS = 2.0
"""Pause before attempt ``k + 1`` is ``k`` times this (the server or the network may be recovering)."""
_PROGRESS_SECONDS = 5.0


def fetch_shard(
    connect: Callable[[], Any], plan: ShardPlan, rank: int, hosts: int, options: ReadOptions, spill_dir: Path,
) -> Shard:
    """Fetch host ``rank``'s shard into ``spill_dir``; retry from a clean start if the connection drops.

    A dropped connection surfaces as the connector's OperationalError or InterfaceError (the server
    went away), an HttpError (the server came back but forgot the session: 401) or, on a new attempt,
    as a failed sign-in: each is retried, :data:`FETCH_ATTEMPTS` times in all. Every attempt rewrites
    the spill files from the start, so a retried shard has no duplicate or missing rows.
    """
    retryable = _connection_errors()
    for attempt in range(1, FETCH_ATTEMPTS + 1):
        conn = None
        try:
            conn = connect()
            return _fetch_once(conn, plan, rank, hosts, options, spill_dir)
        except retryable as err:
            cause = f"{type(err).__name__}, errno {getattr(err, 'errno', None) or '?'}"
            if attempt == FETCH_ATTEMPTS:
                raise SnowflakeError(
                    f"lost the connection to Snowflake while fetching shard {rank} of {hosts} "
                    f"({FETCH_ATTEMPTS} attempts, last: {cause}): check the network path to Snowflake "
                    "and the warehouse, then restart the job"
                ) from None
            log.warning("connection lost while fetching shard (attempt %d of %d, %s): starting the shard "
                        "again in %.0f s", attempt, FETCH_ATTEMPTS, cause, RETRY_PAUSE_SECONDS * attempt)
            time.sleep(RETRY_PAUSE_SECONDS * attempt)
        finally:
            _close_quietly(conn)
    raise AssertionError("unreachable")


def _connection_errors() -> tuple[type[Exception], ...]:
    from snowflake.connector.errors import HttpError, InterfaceError, OperationalError
    from snowflake.connector.vendored.requests.exceptions import RequestException

    # RequestException: a result chunk whose download still fails after the connector's retries
    return (OperationalError, InterfaceError, HttpError, SnowflakeError, RequestException)


def _close_quietly(conn: Any) -> None:
    """Close a connection that may be dead; the connector's own errors are nothing to save.

    (snowflake-connector 4.x's ``close`` already logs and drops its failures; a DB-API ``close``
    may raise the connector's ``Error``. Anything else is a bug and is raised.)
    """
    if conn is None:
        return
    from snowflake.connector.errors import Error

    try:
        conn.close()
    except Error as err:
        log.debug("closing the Snowflake connection failed: %s", err)


def _fetch_once(conn: Any, plan: ShardPlan, rank: int, hosts: int, options: ReadOptions, spill_dir: Path) -> Shard:
    pages = options.fetch_pages
    shard = new_shard(plan, options, spill_dir)
    started = time.monotonic()
    progress = _Progress(rank, pages)
    with spill_files(shard, plan) as sinks:
        for page in range(pages):
            if not _fetch_page(conn, plan, options, hosts, rank + hosts * page, shard, sinks):
                break
            progress.update(shard, page)
    shard.fetch_seconds = time.monotonic() - started
    log_fetched(shard)
    return shard


def _fetch_page(conn: Any, plan: ShardPlan, options: ReadOptions, hosts: int, remainder: int, shard: Shard,
                sinks: tuple[Any, Any]) -> bool:
    """Spill one page's rows; False once a text column passed the cap (fetching more is wasted)."""
    cursor = conn.cursor()
    try:
        plan.execute(cursor, plan.parameters(options, hosts * options.fetch_pages, remainder))
        shard.query_ids.append(cursor.sfqid)
        for result in cursor.fetch_arrow_batches():  # a pyarrow Table per result chunk
            if not spill_table(result, plan, shard, sinks):
                return False
    finally:
        cursor.close()
    return True


class _Progress:
    """Logs rows fetched at most every few seconds, so long fetches show they are alive."""

    def __init__(self, rank: int, pages: int) -> None:
        self.rank, self.pages, self.last = rank, pages, time.monotonic()

    def update(self, shard: Shard, page: int) -> None:
        now = time.monotonic()
        if now - self.last >= _PROGRESS_SECONDS:
            self.last = now
            log.info("fetching: %s rows in %d batches so far (page %d of %d)",
                     f"{shard.rows:,}", shard.batches, page + 1, self.pages)
