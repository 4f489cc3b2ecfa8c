"""What a job read, kept in its checkpoint directory, so that a restart reads the same snapshot.

A spot restart brings the checkpoint directory back (SageMaker syncs it to S3) but not the spill
directory: the hosts read again. The leader keeps one small record of its read: the job's name, a
digest of the query, when it read, and what pins the snapshot (``read_mode=scan``: the one
query's id, whose result Snowflake keeps 24 hours; ``snapshot=job_start``: the Time Travel time).
No URL, no key, nothing secret. A record counts only for the same job (a spot restart keeps the
job's name; a new job with the same checkpoint location reads the table as it is now), the same
query, and for :data:`KEEP_FOR`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RECORD_FILE = "snowflake-read.json"
KEEP_FOR = timedelta(hours=23)
"""A record older than this is not used: Snowflake keeps a query's result 24 hours (and a table's
Time Travel history at least a day by default)."""


@dataclass(frozen=True)
class ReadRecord:
    """The leader's read, as a restart finds it."""

    job_name: str
    query_digest: str
    read_at: str  # ISO 8601, UTC
    query_id: str = ""  # read_mode=scan: the one query, re-opened with RESULT_SCAN
    snapshot_at: str = ""  # snapshot=job_start: the Time Travel time every host read at


def query_digest(query_template: str, parameters: dict[str, Any]) -> str:
    text = json.dumps([query_template, parameters], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load(checkpoint_dir: Path | None, job_name: str, digest: str, now: datetime) -> ReadRecord | None:
    """This job's record of this query while it may be used, else None (the log says why, if one was there)."""
    path = checkpoint_dir / RECORD_FILE if checkpoint_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        record = ReadRecord(**json.loads(path.read_text()))
        age = now - datetime.fromisoformat(record.read_at)
    except (OSError, ValueError, TypeError):
        log.warning("ignored an unreadable %s in the checkpoint directory", RECORD_FILE)
        return None
    if record.job_name != job_name:
        log.info("the checkpoint directory holds the read of job %s, not this one: this job reads the table as it "
                 "is now", record.job_name or "(unnamed)")
        return None
    if record.query_digest != digest:
        log.info("the recorded read was another query (other columns or hyperparameters): reading the table again")
        return None
    if age > KEEP_FOR:
        log.warning("the snapshot changes: this job's first read (at %s) is older than Snowflake keeps it, so the "
                    "table is read again", record.read_at)
        return None
    return record


def save(checkpoint_dir: Path | None, record: ReadRecord) -> None:
    """Write ``record`` atomically (no-op without a checkpoint directory: nothing to restart from)."""
    if checkpoint_dir is None:
        return
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    temp = checkpoint_dir / f".{RECORD_FILE}.tmp"
    temp.write_text(json.dumps(asdict(record)))
    os.replace(temp, checkpoint_dir / RECORD_FILE)
