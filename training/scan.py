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
synced back) reads the same snapshot again: the leader keeps the query's id and time in the
checkpoint directory (:data:`RESULT_RECORD`; no URL, no key) and, while Snowflake still keeps the
result (24 hours), re-opens it with ``RESULT_SCAN`` for fresh chunk URLs instead of querying the
table again. An older or unknown result is queried again, and the log says the snapshot changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from training.errors import SnowflakeError
from training.hyperparameters import Hyperparameters
from training.shards import (
    Shard,
    ShardPlan,
    log_fetched,
    new_shard,
    spill_files,
    spill_table,
)

log = logging.getLogger(__name__)

RESULT_RECORD = "snowflake-result.json"
"""In the checkpoint directory: the leader's query id, read time and query digest (for a restart)."""
REOPEN_WITHIN = timedelta(hours=23)
"""A result younger than this is re-opened on restart (Snowflake keeps a query's result 24 hours)."""


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


def run_scan(conn: Any, plan: ShardPlan, hps: Hyperparameters) -> ScanResult:
    """Run the job's one query (leader): every row, with the validation flag (at ``plan``'s snapshot time, if any)."""
    cursor = conn.cursor()
    try:
        read_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        plan.execute(cursor, plan.parameters(hps, 1, 0))
        return ScanResult(cursor.sfqid, list(cursor.get_result_batches() or []), read_at)
    finally:
        cursor.close()


def open_scan(conn: Any, plan: ShardPlan, hps: Hyperparameters, checkpoint_dir: Path | None,
              now: datetime | None = None) -> ScanResult:
    """The job's one result (leader): re-opened when a restart finds it recorded and kept, else queried.

    The record is written after a new query, so a restart reads the snapshot its checkpoints were
    trained on. Without a checkpoint directory every start queries the table.
    """
    now = now or datetime.now(timezone.utc)
    digest = _query_digest(plan, hps)
    record = _read_record(checkpoint_dir)
    if record is not None and record.get("query_digest") == digest:
        reopened = _reopen(conn, record, now)
        if reopened is not None:
            return reopened
    elif record is not None:
        log.info("the recorded result of query %s was read by another query (other columns or hyperparameters): "
                 "querying the table", record.get("query_id"))
    result = run_scan(conn, plan, hps)
    if checkpoint_dir is not None:
        _write_record(checkpoint_dir, {"query_id": result.query_id, "read_at": result.read_at,
                                       "query_digest": digest})
    return result


def _reopen(conn: Any, record: dict[str, Any], now: datetime) -> ScanResult | None:
    """The recorded result with fresh chunk URLs, or None (logged) when it is too old or gone."""
    from snowflake.connector.errors import ProgrammingError

    query_id, read_at = str(record.get("query_id")), str(record.get("read_at"))
    try:
        age = now - datetime.fromisoformat(read_at)
    except (TypeError, ValueError):
        age = None
    if age is None or age > REOPEN_WITHIN:
        log.warning("the snapshot changes: the result of query %s (read at %s) is older than Snowflake keeps "
                    "results, so the table is queried again", query_id, read_at)
        return None
    cursor = conn.cursor()
    try:
        cursor.execute("SELECT * FROM TABLE(RESULT_SCAN(%(query_id)s))", {"query_id": query_id})
        batches = list(cursor.get_result_batches() or [])
    except ProgrammingError as err:  # not found, expired, or not this user's
        log.warning("the snapshot changes: could not re-open the result of query %s (read at %s; errno %s), so "
                    "the table is queried again", query_id, read_at, getattr(err, "errno", None) or "?")
        return None
    finally:
        cursor.close()
    log.info("re-opened the result of query %s (read at %s) for this restart: the same snapshot as before",
             query_id, read_at)
    return ScanResult(query_id, batches, read_at)


def _query_digest(plan: ShardPlan, hps: Hyperparameters) -> str:
    text = json.dumps([plan.query_template, plan.parameters(hps, 1, 0)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_record(checkpoint_dir: Path | None) -> dict[str, Any] | None:
    path = checkpoint_dir / RESULT_RECORD if checkpoint_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        log.warning("ignored an unreadable %s in the checkpoint directory", RESULT_RECORD)
        return None
    return record if isinstance(record, dict) else None


def _write_record(checkpoint_dir: Path, record: dict[str, str]) -> None:
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    temp = checkpoint_dir / f".{RESULT_RECORD}.tmp"
    temp.write_text(json.dumps(record))
    os.replace(temp, checkpoint_dir / RESULT_RECORD)


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


def fetch_share(share: ScanShare, plan: ShardPlan, hps: Hyperparameters, spill_dir: Path,
                leader: bool = False) -> Shard:
    """Download this host's batches, ``fetch_threads`` at a time, and spill them as a shard.

    The leader's shard carries the one query's id (the job's lineage gathers it once).
    """
    shard = new_shard(plan, hps, spill_dir)
    shard.read_at = share.read_at
    shard.query_ids = [share.query_id] if leader else []
    started = time.monotonic()
    with spill_files(shard, plan) as sinks:
        for result in _download(share, hps["fetch_threads"]):
            shard.received_rows += result.num_rows
            if not spill_table(result, plan, shard, sinks):
                break
    shard.fetch_seconds = time.monotonic() - started
    log_fetched(shard)
    return shard


def _download(share: ScanShare, threads: int) -> Iterator[pa.Table]:
    """The share's batches in order; at most ``threads`` downloads in flight or waiting to be spilled."""
    todo = iter(zip(share.numbers, share.batches, strict=True))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="chunk") as pool:
        pending: deque[tuple[int, Future[pa.Table]]] = deque()

        def submit() -> None:
            item = next(todo, None)
            if item is not None:
                pending.append((item[0], pool.submit(item[1].to_arrow)))

        for _ in range(threads):
            submit()
        while pending:
            number, future = pending.popleft()
            table = _result(future, number, share.result_batches)
            submit()
            yield table


def _result(future: Future[pa.Table], number: int, count: int) -> pa.Table:
    from snowflake.connector.errors import Error

    try:
        return future.result()
    except Error as err:  # after the connector's own retries; its message may hold the URL: not shown
        raise SnowflakeError(
            f"could not download result batch {number} of {count} ({type(err).__name__}, errno "
            f"{getattr(err, 'errno', None) or '?'}) after retries: the hosts must reach Snowflake's result "
            "storage (in a VPC, a route to S3), and a result expires about 6 hours after its query; restart the job"
        ) from None
