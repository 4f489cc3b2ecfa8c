"""The leader's record of its read: used by a restart of the same job, for the same query, within a day."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from training.read import read_record
from training.read.read_record import RECORD_FILE, ReadRecord

NOW = datetime(2026, 11, 29, 12, tzinfo=timezone.utc)
RECORD = ReadRecord("xgb-1", "d1", NOW.isoformat(), snapshot_at="2026-11-29T11:59:00+00:00")


def test_a_restart_of_the_same_job_finds_its_read(tmp_path):
    read_record.save(tmp_path, RECORD)
    assert read_record.load(tmp_path, "xgb-1", "d1", NOW + timedelta(hours=5)) == RECORD


@pytest.mark.parametrize(("job", "digest", "later", "said"), [
    ("xgb-2", "d1", 1, "holds the read of job xgb-1, not this one"),  # a new job, same checkpoint location
    ("xgb-1", "d2", 1, "was another query"),
    ("xgb-1", "d1", 24, "the snapshot changes: this job's first read"),
])
def test_another_job_another_query_or_an_old_read_reads_the_table_again(tmp_path, caplog, job, digest, later, said):
    read_record.save(tmp_path, RECORD)
    with caplog.at_level(logging.INFO, logger="training.read.read_record"):
        assert read_record.load(tmp_path, job, digest, NOW + timedelta(hours=later)) is None
    assert said in caplog.text


def test_no_directory_or_an_unreadable_record_is_no_record(tmp_path, caplog):
    read_record.save(None, RECORD)  # no checkpoint location: nothing to restart from
    assert read_record.load(None, "xgb-1", "d1", NOW) is None
    (tmp_path / RECORD_FILE).write_text("{not json")
    assert read_record.load(tmp_path, "xgb-1", "d1", NOW) is None and "unreadable" in caplog.text
