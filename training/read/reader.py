"""How a host reads its rows for the job: the plan on every host, then what each read mode fetches
before and after the hosts join (the checks after the read are :mod:`training.read.checks`).

``hash``: every host fetches its own shard (as the hosts finish at different times, the join
waits for the slowest); with ``snapshot=job_start`` the leader only asks Snowflake for the time
before joining, and the hosts fetch once they have joined. ``scan``: the leader runs the job's one
query (the join waits for it only); its result batches are dealt once the hosts have joined.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from training.collective.cluster import Cluster, agree, broadcast
from training.read import read_record, snapshot
from training.read.columns import ColumnPlan
from training.read.credentials import SnowflakeCredentials
from training.read.hash_fetch import fetch_shard
from training.read.names import resolve_table
from training.read.options import ReadOptions
from training.read.plan import ShardPlan, plan_shard
from training.read.scan import ScanResult, ScanShare, fetch_share, open_scan, shares
from training.read.snowflake import (
    DEFAULT_TIMEOUTS,
    SnowflakeTimeouts,
    connect,
    count_distinct,
    describe_table,
)
from training.read.spill import Shard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reader:
    """This host's read: whose credentials, which options, where it spills, and the job it belongs to."""

    creds: SnowflakeCredentials
    options: ReadOptions
    cluster: Cluster
    spill_dir: Path
    timeouts: SnowflakeTimeouts = DEFAULT_TIMEOUTS
    checkpoint_dir: Path | None = None
    job_name: str = ""
    """The training job's name: a restart re-opens its first read (:mod:`training.read.read_record`)."""

    def connection(self) -> Any:
        """A new Snowflake connection for this read (the caller closes it)."""
        return connect(self.creds, self.options.query_tag, self.timeouts)

    def before_joining(self, check_plan: Callable[[ColumnPlan], None]) -> tuple[ShardPlan, Shard | None,
                                                                                  ScanResult | None]:
        """Plan the read on every host (``check_plan`` checks it before any row is fetched); then what
        each mode reads alone, before the hosts join."""
        options, cluster = self.options, self.cluster
        conn = self.connection()
        try:
            table, table_sql, columns = resolve_table(options.readings["table"],
                                                      lambda sql: describe_table(conn, sql), options.table)
            plan = plan_shard(columns, options, table_sql, table)
            check_plan(plan.columns)
            kinds = Counter(c.kind for c in plan.columns.features)
            log.info("reading %s as host %d of %d, read_mode=%s, snapshot=%s (%d features: %s; target %s as %s)",
                     plan.table, cluster.rank, cluster.size, options.read_mode, options.snapshot, len(plan.features),
                     ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())), plan.target, plan.columns.label.kind)
            if options.read_mode == "scan":
                if cluster.leader:
                    self._scan_notes()
                return plan, None, (open_scan(conn, plan, options, self.checkpoint_dir, self.job_name)
                                    if cluster.leader else None)
            if options.snapshot == snapshot.JOB_START:
                # the leader picks the time; every host learns it once joined, then fetches
                return replace(plan, snapshot_at=self._job_start_time(conn, plan) if cluster.leader else ""), None, None
        finally:
            conn.close()
        return plan, fetch_shard(self.connection, plan, cluster.rank, cluster.size, options, self.spill_dir), None

    def joined(self, plan: ShardPlan, scan: ScanResult | None) -> tuple[ShardPlan, Shard, ScanShare | None]:
        """What each host reads once the hosts have joined: its share of the leader's scan, or (``hash``
        with ``snapshot=job_start``) its own shard at the time the leader picked."""
        options, cluster = self.options, self.cluster
        if options.read_mode == "scan":
            share = self._deal(scan)
            # a host whose download fails fails every host at once, with its reason
            return plan, agree(lambda: fetch_share(share, plan, options, self.spill_dir, cluster.leader), cluster,
                               "read: share fetched"), share
        plan = replace(plan, snapshot_at=broadcast(plan.snapshot_at if cluster.leader else None, cluster,
                                                   "read: snapshot time"))
        log.info("reading shard %d of %d at snapshot %s (snapshot=job_start, the leader's Snowflake time)",
                 cluster.rank, cluster.size, plan.snapshot_at)
        shard = agree(lambda: fetch_shard(self.connection, plan, cluster.rank, cluster.size, options, self.spill_dir),
                      cluster, "read: shard fetched")
        return plan, shard, None

    def count_distinct(self, plan: ShardPlan, column: str) -> int:
        """The distinct values of ``column`` in the table (the line that fails a column over the cap)."""
        conn = self.connection()
        try:
            return count_distinct(conn, plan.table_sql, column)
        finally:
            conn.close()

    def _deal(self, scan: ScanResult | None) -> ScanShare:
        """This host's share of the leader's result batches (sent through the collective, never logged)."""
        # One broadcast of every share; each host keeps its own (the batches are small: URLs and headers).
        cluster = self.cluster
        return broadcast(shares(scan, cluster.size) if cluster.leader else None, cluster, "read: deal")[cluster.rank]

    def _job_start_time(self, conn: Any, plan: ShardPlan) -> str:
        """``snapshot=job_start``'s time (leader): Snowflake's now, or, when this job restarts (spot), its
        first start's, so the hosts read the snapshot its checkpoints were trained on."""
        job_name, now = self.job_name, datetime.now(timezone.utc)
        digest = read_record.query_digest(plan.query_template, plan.parameters(self.options, 1, 0))
        record = read_record.load(self.checkpoint_dir, job_name, digest, now)
        if record is not None and record.snapshot_at:
            log.info("reading at this job's first snapshot, %s, for this restart", record.snapshot_at)
            return record.snapshot_at
        moment = snapshot.current_time(conn)
        read_record.save(self.checkpoint_dir, read_record.ReadRecord(job_name, digest,
                                                                     now.isoformat(timespec="seconds"),
                                                                     snapshot_at=moment))
        return moment

    def _scan_notes(self) -> None:
        """The leader's notes on hyperparameters that read_mode=scan does not need."""
        options = self.options
        if options.fetch_pages > 1:
            log.warning("fetch_pages=%d applies to read_mode=hash only: scan reads its one result chunk by "
                        "chunk, %d at a time per host (fetch_threads)", options.fetch_pages, options.fetch_threads)
        if options.snapshot == snapshot.JOB_START:
            log.info("snapshot=job_start: read_mode=scan reads one snapshot already (its one query); no AT clause")
