"""One snapshot for the whole job: the ``snapshot`` hyperparameter, the AT clause, the lineage record."""

from dataclasses import replace

import pytest
from snowflake.connector.errors import ProgrammingError

from training.errors import DataError, HyperparameterError
from training.hyperparameters import parse_hyperparameters
from training.read.plan import plan_shard
from training.read.snapshot import time_travel_error
from training.read.snowflake import Column
from training.tracking.lineage import SnowflakeLineage

COLUMNS = [Column("ID", 0), Column("F0", 1), Column("Y", 1)]
AT = " AT(TIMESTAMP => %(snapshot)s::TIMESTAMP_LTZ) "


def _hps(**kw: str):
    return parse_hyperparameters({"table": 'db.s."My Table"', "target": "y", "shard_key": "id", **kw})


@pytest.mark.parametrize(("given", "setting"), [
    (None, "none"),
    ("none", "none"),
    ("JOB_START", "job_start"),
    ("2026-11-01T12:00:00+00:00", "2026-11-01T12:00:00+00:00"),
    ("2026-11-01T12:00:00Z", "2026-11-01T12:00:00+00:00"),  # Python 3.10 does not read "Z" itself
    ("2026-11-01 13:30:00.25+01:00", "2026-11-01T13:30:00.250000+01:00"),
    ("2026-11-01T13:30-05:00", "2026-11-01T13:30:00-05:00"),
])
def test_snapshot_settings_are_normalised(given, setting):
    hps = _hps() if given is None else _hps(snapshot=given)
    assert hps["snapshot"] == setting


@pytest.mark.parametrize(("given", "fragment"), [
    ("yesterday", "must be none, job_start or an ISO-8601 timestamp with a timezone (e.g. 2026-11-01T12:00:00+00:00), "
                  "got 'yesterday': fix its value"),
    ("2026-13-01T00:00:00+00:00", "got '2026-13-01T00:00:00+00:00': fix its value"),
    ("2026-11-01", "got '2026-11-01': fix its value"),  # a day is not a moment
    ("20261101T120000+0000", "fix its value"),  # the basic format: Python 3.10 reads it not, so neither do we
    ("2026-11-01T12:00:00", "'snapshot' '2026-11-01T12:00:00' has no timezone: add one (e.g. "
                            "2026-11-01T12:00:00+00:00 for UTC)"),
])
def test_a_bad_snapshot_names_the_fix(given, fragment):
    with pytest.raises(HyperparameterError, match="hyperparameter 'snapshot'") as err:
        _hps(snapshot=given)
    assert fragment in str(err.value)


def test_no_snapshot_no_at_clause():
    for setting in ("none", "job_start"):  # job_start's time is filled in by the leader at run time
        plan = plan_shard(COLUMNS, _hps(snapshot=setting).read_options())
        assert plan.snapshot_at == "" and " AT(" not in plan.query_template
        assert "snapshot" not in plan.parameters(_hps().read_options(), 3, 1)


def test_an_explicit_snapshot_reads_the_table_at_that_time_by_bind_parameter():
    hps = _hps(snapshot="2026-11-01T12:00:00Z")
    plan = plan_shard(COLUMNS, hps.read_options())
    sql = plan.query_template
    # The AT clause sits right after the quoted table name, the time is a bind parameter, never formatted in.
    assert f'FROM "DB"."S"."My Table"{AT}WHERE MOD(ABS(HASH("ID")), %(modulus)s) = %(remainder)s' in sql
    assert "2026" not in sql
    params = plan.parameters(hps.read_options(), 3, 1)
    assert params["snapshot"] == "2026-11-01T12:00:00+00:00"
    assert (params["modulus"], params["remainder"]) == (3, 1)


def test_the_leaders_time_goes_into_the_same_clause():
    plan = replace(plan_shard(COLUMNS, _hps(snapshot="job_start").read_options()), snapshot_at="2026-11-29T23:39:35.685205+00:00")
    assert AT in plan.query_template
    assert plan.parameters(_hps().read_options(), 1, 0)["snapshot"] == "2026-11-29T23:39:35.685205+00:00"


def _refusal(msg: str) -> ProgrammingError:
    return ProgrammingError(msg=msg, errno=707, sqlstate="02000")


def test_a_refused_snapshot_is_one_line_with_the_fix():
    err = time_travel_error(_refusal("Time travel data is not available for table MY_TABLE. The requested time is "
                                     "either beyond the allowed time travel period or before the object creation "
                                     "time."), "db.s.t", "2020-01-01T00:00:00+00:00")
    assert isinstance(err, DataError)
    text = str(err)
    assert "\n" not in text
    assert text.startswith("table 'db.s.t' has no Time Travel data at snapshot 2020-01-01T00:00:00+00:00")
    assert "DATA_RETENTION_TIME_IN_DAYS" in text and "snapshot=none" in text


def test_other_errors_and_reads_without_snapshot_are_not_mapped():
    assert time_travel_error(_refusal("Object 'T' does not exist"), "t", "2020-01-01T00:00:00+00:00") is None
    assert time_travel_error(_refusal("Time travel data is not available"), "t", "") is None


class _Cursor:
    def execute(self, sql, params):
        raise _refusal("Time travel data is not available for table T.")


def test_the_shard_query_maps_snowflakes_refusal():
    plan = plan_shard(COLUMNS, _hps(snapshot="2020-01-01T00:00:00+00:00").read_options())
    with pytest.raises(DataError, match="set 'snapshot' to a past time within the table's DATA_RETENTION"):
        plan.execute(_Cursor(), plan.parameters(_hps().read_options(), 1, 0))


def _lineage(**kw) -> SnowflakeLineage:
    fields = dict(account="acct", database="DB", schema="S", table="T", query_template="SELECT ...",
                  query_ids=["q1", "q2"], read_at="2026-11-29T23:40:00+00:00", rows=10, columns=["F0", "Y"],
                  schema_digest="abc", read_mode="hash")
    return SnowflakeLineage(**{**fields, **kw})


def test_lineage_records_the_snapshot_time_and_it_identifies_the_data():
    pinned = _lineage(snapshot_at="2026-11-29T23:39:35+00:00")
    assert pinned.source_dict()["snapshot_at"] == "2026-11-29T23:39:35+00:00"
    assert _lineage().source_dict()["snapshot_at"] == ""
    assert pinned.digest() != _lineage(snapshot_at="2026-11-28T00:00:00+00:00").digest()
    # a read without a snapshot time digests as it did before the field existed
    assert _lineage().digest() == "2d18436059"  # computed before this change


@pytest.mark.parametrize(("mode", "setting", "recorded"), [
    ("scan", "none", "2026-11-29T23:40:00+00:00"),  # scan's one query: when it ran
    ("scan", "2026-11-01T12:00:00+00:00", "2026-11-01T12:00:00+00:00"),  # AT applies to the one query too
    ("hash", "none", ""),  # the hosts read at their own moments: no one time
    ("hash", "2026-11-01T12:00:00+00:00", "2026-11-01T12:00:00+00:00"),
])
def test_the_jobs_lineage_records_the_one_time_it_read_at(mode, setting, recorded, tmp_path):
    from training.read.credentials import SnowflakeCredentials
    from training.read.spill import new_shard
    from training.tracking.lineage import lineage_of

    hps = _hps(read_mode=mode, snapshot=setting)
    plan = plan_shard(COLUMNS, hps.read_options())
    shard = new_shard(plan, hps.read_options(), tmp_path)
    shard.read_at = "2026-11-29T23:40:00+00:00"
    creds = SnowflakeCredentials("acct", "u", "wh", "DB", "S", "r", "password", {})
    lineage = lineage_of(creds, plan, plan.columns, shard, ["q1"], 10, mode)
    assert (lineage.read_mode, lineage.snapshot_at) == (mode, recorded)
    assert (" AT(" in lineage.query_template) == (setting != "none")
