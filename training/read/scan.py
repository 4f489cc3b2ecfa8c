"""Read mode ``scan``: one query for the whole job, its result batches dealt to the hosts.

The leader runs the job's query once (every row; the validation flag computed in SQL by the
same salted hash as in ``hash`` mode) and takes the connector's result batches
(``get_result_batches()``): the inline part of the answer, and the chunks Snowflake keeps for
about 6 hours, each downloaded by a plain GET with no session. It deals them to the hosts by row
count (largest first, each to the host with the fewest rows so far: hosts end within one chunk
of equal) and sends every host its share through the collective. Each host downloads its
batches, ``fetch_threads`` at a time (memory: about that many chunks), and spills them as a
``hash`` shard is spilled. One warehouse scan and one snapshot, whatever the number of hosts.

Result batches are secrets: a chunk URL is a bearer link and, with SSE-C, the batch's headers
carry the decryption key. They travel only through the collective, are never logged, and an
error about one names its number, never its URL.

A restarted job (a spot interruption: the spill directory is gone, the checkpoint directory is
synced back) reads the same snapshot again: the leader keeps the query's id in the checkpoint
directory (:mod:`training.read.read_record`; no URL, no key) and, while Snowflake still keeps the
result (24 hours), re-opens it with ``RESULT_SCAN`` for fresh chunk URLs instead of querying the
table again. An older or unknown result is queried again, and the log says the snapshot changed.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from training.errors import SnowflakeError
from training.read import read_record
from training.read.options import ReadOptions
from training.read.plan import ShardPlan
from training.read.spill import Shard, log_fetched, new_shard, spill_files, spill_table

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class ScanResult:
    """The leader's one query: its id, its result batches (secrets, never printed) and when it ran."""

    query_id: str
    batches: list[Any] = field(repr=False)
    read_at: str


@dataclass(frozen=True)
class ScanShare:
    """What the leader sends one host: its result batches, and what the whole result holds."""

    batches: list[Any] = field(repr=False)  # snowflake.connector ResultBatch: secrets, never printed
    numbers: list[int]
    """Each batch's position in the result (for messages that must not show its URL)."""
    query_id: str
    read_at: str
    result_rows: int
    result_batches: int


def run_scan(conn: Any, plan: ShardPlan, options: ReadOptions) -> ScanResult:
    """Run the job's one query (leader): every row, with the validation flag (at ``plan``'s snapshot time, if any)."""
    return query_result(conn, lambda cursor: plan.execute(cursor, plan.parameters(options, 1, 0)))


def query_result(conn: Any, execute: Callable[[Any], object]) -> ScanResult:
    """The result of the one query ``execute(cursor)`` runs, as result batches to deal (its id, and when it ran)."""
    cursor = conn.cursor()
    try:
        read_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        execute(cursor)
        return ScanResult(cursor.sfqid, list(cursor.get_result_batches() or []), read_at)
    finally:
        cursor.close()


def open_scan(conn: Any, plan: ShardPlan, options: ReadOptions, checkpoint_dir: Path | None, job_name: str = "",
              now: datetime | None = None) -> ScanResult:
    """The job's one result (leader): re-opened when a restart of this job finds it recorded and kept,
    else queried (and recorded, so a restart reads the snapshot its checkpoints were trained on).
    Without a checkpoint directory every start queries the table."""
    now = now or datetime.now(timezone.utc)
    digest = read_record.query_digest(plan.query_template, plan.parameters(options, 1, 0))
    record = read_record.load(checkpoint_dir, job_name, digest, now)
    if record is not None and record.query_id:
        reopened = _reopen(conn, record)
        if reopened is not None:
            return reopened
    result = run_scan(conn, plan, options)
    read_record.save(checkpoint_dir, read_record.ReadRecord(job_name, digest, result.read_at, query_id=result.query_id))
    return result


def _reopen(conn: Any, record: read_record.ReadRecord) -> ScanResult | None:
    """The recorded result with fresh chunk URLs, or None (logged) when Snowflake no longer has it."""
    from snowflake.connector.errors import Error

    cursor = conn.cursor()
    try:
        cursor.execute("SELECT * FROM TABLE(RESULT_SCAN(%(query_id)s))", {"query_id": record.query_id})
        batches = list(cursor.get_result_batches() or [])
    except Error as err:  # not found, expired, not this user's, or the request failed: query afresh
        log.warning("the snapshot changes: could not re-open the result of query %s (read at %s; %s, errno %s), so "
                    "the table is queried again", record.query_id, record.read_at, type(err).__name__,
                    getattr(err, "errno", None) or "?")
        return None
    finally:
        cursor.close()
    log.info("re-opened the result of query %s (read at %s) for this restart: the same snapshot as before",
             record.query_id, record.read_at)
    return ScanResult(record.query_id, batches, record.read_at)


def deal(rowcounts: Sequence[int], hosts: int) -> list[list[int]]:
    """Batch indexes per host, balancing rows; each host's batches stay in result order.

    Largest batch first, each to the host with the fewest rows so far (ties: the lowest rank), so
    no host has more than one batch's rows above another's; the deal depends only on the counts.
    """
    loads, shares = [0] * hosts, [[] for _ in range(hosts)]
    for index in sorted(range(len(rowcounts)), key=lambda i: (-rowcounts[i], i)):
        host = min(range(hosts), key=lambda h: (loads[h], h))
        shares[host].append(index)
        loads[host] += rowcounts[index]
    return [sorted(share) for share in shares]


def shares(result: ScanResult, hosts: int) -> list[ScanShare]:
    """The leader's deal of the result's batches to ``hosts``, logged as counts (never URLs)."""
    batches = result.batches
    rowcounts = [batch.rowcount for batch in batches]
    dealt = deal(rowcounts, hosts)
    total = sum(rowcounts)
    log.info("one query for %d host(s): %s rows in %d result batches (query %s); rows per host: %s", hosts,
             f"{total:,}", len(batches), result.query_id,
             ", ".join(f"{sum(rowcounts[i] for i in share):,}" for share in dealt))
    empty = sum(1 for share in dealt if not any(rowcounts[i] for i in share))
    if empty:
        log.warning("the result came back in %d batch(es) with rows for %d hosts: %d host(s) train on an empty "
                    "shard (a result this small is not split into chunks)",
                    sum(1 for n in rowcounts if n), hosts, empty)
    return [ScanShare([batches[i] for i in share], [i + 1 for i in share], result.query_id, result.read_at, total,
                      len(batches)) for share in dealt]


def fetch_share(share: ScanShare, plan: ShardPlan, options: ReadOptions, spill_dir: Path,
                leader: bool = False) -> Shard:
    """Download this host's batches, ``fetch_threads`` at a time, and spill them as a shard.

    The leader's shard carries the one query's id (the job's lineage gathers it once).
    """
    shard = new_shard(plan, options, spill_dir)
    shard.read_at = share.read_at
    shard.query_ids = [share.query_id] if leader else []
    started = time.monotonic()
    with spill_files(shard, plan) as sinks:
        for result in download(share, options.fetch_threads):
            shard.received_rows += result.num_rows
            if not spill_table(result, plan, shard, sinks):
                break
    shard.fetch_seconds = time.monotonic() - started
    log_fetched(shard)
    return shard


def download(share: ScanShare, threads: int) -> Iterator[pa.Table]:
    """The share's batches in order; at most ``threads`` downloads in flight or waiting to be spilled."""
    todo = iter(zip(share.numbers, share.batches, strict=True))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="chunk") as pool:
        pending: deque[tuple[int, Future[pa.Table]]] = deque()

        def submit() -> None:
            item = next(todo, None)
            if item is not None:
                pending.append((item[0], pool.submit(item[1].to_arrow)))

        # The first batch is read alone: the connector's C++ Arrow reader sets up its logger on first use
        # inside a std::call_once while it waits for the GIL, and a second thread making its first reader
        # meanwhile holds the GIL while it waits on that call_once: two first readers at once deadlock
        # (seen on a leader of 4 hosts: every download thread idle, forever). Once set up, they run side by side.
        submit()
        if pending:
            wait([pending[0][1]])
        for _ in range(threads - 1):
            submit()
        while pending:
            number, future = pending.popleft()
            table = _result(future, number, share.result_batches)
            submit()
            yield table


def download_errors() -> tuple[type[Exception], ...]:
    """What a result chunk's download raises once the connector's retries are spent: its own errors
    (an HTTP status) or the raw ``requests`` exception (a refused or reset connection, a timeout)."""
    from snowflake.connector.errors import Error
    from snowflake.connector.vendored.requests.exceptions import RequestException

    return (Error, RequestException)


def _result(future: Future[pa.Table], number: int, count: int) -> pa.Table:
    try:
        return future.result()
    except download_errors() as err:  # after the connector's own retries; its message may hold the URL: not shown
        raise SnowflakeError(
            f"could not download result batch {number} of {count} ({type(err).__name__}, errno "
            f"{getattr(err, 'errno', None) or '?'}) after retries: the hosts must reach Snowflake's result "
            "storage (in a VPC, a route to S3), and a result expires about 6 hours after its query; restart the job"
        ) from None
