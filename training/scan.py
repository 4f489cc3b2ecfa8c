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
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
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
