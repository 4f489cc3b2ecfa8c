"""The column plan: every Snowflake type has one treatment, codes come from one vocabulary, and the plan
travels inside the model file."""

import datetime as dt
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from snowflake.connector.constants import FIELD_TYPES

from training.errors import DataError
from training.hyperparameters import parse_hyperparameters
from training.read.columns import (
    FEATURE,
    LABEL,
    WEIGHT,
    ColumnPlan,
    ColumnSpec,
    kind_of,
)
from training.read.plan import plan_shard
from training.read.snowflake import TYPE_NAMES, Column
from training.read.vocabulary import VocabularyCounter, merge_vocabularies


def test_type_names_are_the_connectors():
    assert TYPE_NAMES == tuple(f.name for f in FIELD_TYPES)


@pytest.mark.parametrize(
    ("snowflake_type", "kind"),
    [("FIXED", "numeric"), ("REAL", "numeric"), ("BOOLEAN", "boolean"), ("TEXT", "categorical"), ("DATE", "date"),
     ("TIMESTAMP_NTZ", "timestamp"), ("TIMESTAMP_LTZ", "timestamp"), ("TIMESTAMP_TZ", "timestamp"), ("TIME", "time"),
     ("VARIANT", None), ("OBJECT", None), ("ARRAY", None), ("BINARY", None), ("GEOGRAPHY", None), ("VECTOR", None)],
)
def test_every_snowflake_type_has_a_defined_treatment(snowflake_type, kind):
    found = kind_of(snowflake_type)
    assert (found.name if found else None) == kind


PLAN = ColumnPlan((
    ColumnSpec("price", "FIXED", "numeric", FEATURE), ColumnSpec("member", "BOOLEAN", "boolean", FEATURE),
    ColumnSpec("Region", "TEXT", "categorical", FEATURE), ColumnSpec("d", "DATE", "date", FEATURE),
    ColumnSpec("ts", "TIMESTAMP_TZ", "timestamp", FEATURE), ColumnSpec("t", "TIME", "time", FEATURE),
    ColumnSpec("Label", "TEXT", "class", LABEL), ColumnSpec("w", "REAL", "numeric", WEIGHT),
))


def _raw_batch() -> list[pa.Array]:
    """Arrays as the Snowflake connector returns them."""
    utc = dt.timezone.utc
    return [
        pa.array([Decimal("12.34"), None, Decimal("99999999.99")], pa.decimal128(10, 2)),
        pa.array([True, None, False]),
        pa.array(["north", None, "atlantis"]),
        pa.array([dt.date(1970, 1, 2), dt.date(2020, 1, 1), None]),
        pa.array([dt.datetime(1970, 1, 1, 0, 1, tzinfo=utc), None, dt.datetime(2000, 1, 1, tzinfo=utc)],
                 pa.timestamp("ns", tz="UTC")),
        pa.array([dt.time(0, 1, 30), None, dt.time(23, 59, 59)]),
        pa.array(["gold", "bronze", None]),
        pa.array([1.0, 0.5, 2.0]),
    ]


def test_spill_cast_follows_each_kind():
    spilled = PLAN.to_spill(_raw_batch())
    assert spilled.schema.types == [pa.float32(), pa.float32(), pa.string(), pa.float32(), pa.float32(),
                                    pa.float32(), pa.string(), pa.float32()]
    assert spilled.column("member").to_pylist() == [1.0, None, 0.0]
    assert spilled.column("d").to_pylist() == [1.0, 18262.0, None]  # days since 1970-01-01
    assert spilled.column("ts").to_pylist()[0] == 60.0  # seconds since 1970-01-01 UTC
    assert spilled.column("t").to_pylist() == [90.0, None, 86399.0]
    assert spilled.column("price").to_pylist()[2] == pytest.approx(1e8)  # float32: 24 significant bits


def test_codes_come_from_the_vocabulary_and_null_or_unseen_is_missing():
    plan = PLAN.with_vocabularies({"Region": ("north", "south"), "Label": ("bronze", "gold")})
    features, label, weight = plan.matrix(plan.to_spill(_raw_batch()))
    assert features.dtype == np.float32 and features.shape == (3, 6)
    np.testing.assert_array_equal(features[:, 2], [0, np.nan, np.nan])  # "atlantis" is not in the vocabulary
    np.testing.assert_array_equal(label, [1, 0, np.nan])
    np.testing.assert_array_equal(weight, [1.0, 0.5, 2.0])
    assert plan.feature_types == ["q", "q", "c", "q", "q", "q"]
    assert plan.classes == ["bronze", "gold"]


def test_raw_rows_from_pandas_get_the_same_coding_as_the_connectors_arrow():
    plan = PLAN.with_vocabularies({"Region": ("north", "south"), "Label": ("bronze", "gold")})
    from_connector = plan.matrix(plan.to_spill(_raw_batch()))[0]
    raw = pa.Table.from_arrays(_raw_batch(), names=plan.names).to_pandas()
    raw["price"] = raw["price"].astype(float)
    raw["d"] = raw["d"].astype("datetime64[ns]")
    raw["t"] = [None if v is None else v.isoformat() for v in raw["t"]]  # TIME as text, as the signature says
    np.testing.assert_array_equal(plan.feature_matrix(raw), from_connector)


def test_vocabulary_counter_is_bounded_and_merging_is_the_same_on_every_host():
    plan = PLAN
    hosts = []
    for values in (["b", "a", None], ["c", "a"], []):
        counter = VocabularyCounter(plan, cap=3)
        batch = pa.record_batch({"Region": pa.array(values, pa.string()), "Label": pa.array(["x"] * len(values),
                                                                                            pa.string())})
        counter.update(batch)
        hosts.append(counter.partial())
    vocab, over = merge_vocabularies(plan, hosts, cap=3)
    assert vocab == {"Region": ("a", "b", "c"), "Label": ("x",)} and over == {}
    assert merge_vocabularies(plan, list(reversed(hosts)), cap=3)[0] == vocab
    assert merge_vocabularies(plan, hosts, cap=2)[1] == {"Region": 3}
    counter = VocabularyCounter(plan, cap=2)
    counter.update(pa.record_batch({"Region": pa.array(["a", "b", "c"]), "Label": pa.array(["x"] * 3)}))
    assert counter.over_cap == ["Region"] and counter.values["Region"] == set()  # stopped holding values
    assert merge_vocabularies(plan, [counter.partial()], cap=2)[1] == {"Region": None}


def test_numeric_and_boolean_classes_keep_their_order_and_type():
    label = ColumnPlan((ColumnSpec("x", "REAL", "numeric", FEATURE), ColumnSpec("y", "FIXED", "class", LABEL)))
    counter = VocabularyCounter(label, cap=10)
    counter.update(label.to_spill([pa.array([1.0, 2.0, 3.0]), pa.array([10, 2, 1])]))
    vocab, _ = merge_vocabularies(label, [counter.partial()], cap=10)
    assert label.with_vocabularies(vocab).classes == [1, 2, 10]
    flag = ColumnPlan((ColumnSpec("x", "REAL", "numeric", FEATURE), ColumnSpec("y", "BOOLEAN", "class", LABEL)))
    assert flag.to_spill([pa.array([1.0]), pa.array([True])]).column("y").to_pylist() == ["true"]
    assert flag.with_vocabularies({"y": ("false", "true")}).classes == [False, True]


def test_plan_round_trips_through_json_and_its_digest_tracks_types():
    plan = PLAN.with_vocabularies({"Region": ("north",), "Label": ("a", "b")})
    assert ColumnPlan.from_json(plan.to_json()) == plan
    changed = ColumnPlan((ColumnSpec("price", "REAL", "numeric", FEATURE), *PLAN.columns[1:]))
    assert changed.schema_digest() != PLAN.schema_digest() and PLAN.schema_digest() == plan.schema_digest()


def test_classification_objective_makes_a_text_target_a_class_and_weights_must_be_numbers():
    columns = [Column("ID", 0), Column("X", 1), Column("LABEL", 2), Column("W", 1), Column("DOC", 5)]
    hps = parse_hyperparameters({"table": "t", "target": "label", "objective": "multi:softprob",
                                 "weight_column": "w", "shard_key": "id"})
    plan = plan_shard(columns, hps.read_options()).columns
    assert [(c.name, c.kind, c.role) for c in plan.columns] == [("X", "numeric", FEATURE), ("LABEL", "class", LABEL),
                                                                 ("W", "numeric", WEIGHT)]
    with pytest.raises(DataError, match="weight_column 'LABEL' is TEXT, not a number"):
        plan_shard(columns, parse_hyperparameters({"table": "t", "target": "x", "weight_column": "label"}).read_options())


def test_names_xgboost_refuses_are_made_safe_and_kept_distinct():
    plan = ColumnPlan((ColumnSpec("temp[C]", "REAL", "numeric", FEATURE), ColumnSpec("temp_C_", "REAL", "numeric", FEATURE),
                       ColumnSpec("a<b", "REAL", "numeric", FEATURE), ColumnSpec("y", "REAL", "numeric", LABEL)))
    assert plan.xgboost_feature_names == ["temp_C__0", "temp_C_", "a_b"]
    assert plan.feature_names == ["temp[C]", "temp_C_", "a<b"]


def test_a_feature_the_rows_leave_out_is_missing_and_dates_are_whole_days():
    plan = PLAN.with_vocabularies({"Region": ("north",), "Label": ("a", "b")})
    import pandas as pd

    rows = pd.DataFrame({"price": [1.5], "d": pd.to_datetime(["1970-01-03 18:00"])})  # the rest left out
    features = plan.feature_matrix(rows)
    assert features[0, 0] == 1.5 and features[0, 3] == 2.0  # the day, not 2.75
    assert np.isnan(features[0, [1, 2, 4, 5]]).all()


def test_dates_and_times_given_as_text_read_as_the_table_has_them():
    """Text as JSON callers send it (MLflow passes a date or timestamp column on as text): both ISO 8601
    forms, NULL, and pandas' ``NaT`` (MLflow's serving example writes a missing datetime so) as NULL."""
    import pandas as pd

    plan = PLAN.with_vocabularies({"Region": ("north",), "Label": ("a", "b")})
    rows = pd.DataFrame({"d": ["1970-01-03", None, "NaT", "1970-01-02T12:00:00", "1970-01-02 12:00:00"]})
    days = plan.feature_matrix(rows)[:, 3]
    np.testing.assert_array_equal(days, [2.0, np.nan, np.nan, 1.0, 1.0])


def test_minus_zero_is_the_same_class_as_zero():
    label = ColumnPlan((ColumnSpec("x", "REAL", "numeric", FEATURE), ColumnSpec("y", "REAL", "class", LABEL)))
    spilled = label.to_spill([pa.array([1.0, 2.0]), pa.array([-0.0, 0.0])])
    assert spilled.column("y").to_pylist() == ["0", "0"]


def test_the_users_type_table_says_what_the_code_does():
    from pathlib import Path

    from training.read.columns import KINDS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "your-table.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| ") and line.count("|") == 4]
    for kind in KINDS:
        mine = [row for row in rows if row.split("|")[2].strip() == kind.name]
        assert mine and all(kind.treatment in row for row in mine), kind.name
    unsupported = next(row for row in rows if row.split("|")[2].strip() == "—")
    for name in TYPE_NAMES:
        if kind_of(name) is None:
            assert name.split("_")[0] in unsupported, name


def test_timestamps_with_a_zone_score_as_the_job_read_them():
    """Text with ``Z`` or an offset: for TIMESTAMP_TZ/LTZ the instant in UTC, as the connector's Arrow hands such a
    column to the job (tz-aware, UTC); for TIMESTAMP_NTZ the wall-clock time (Snowflake's cast drops the offset)."""
    import pandas as pd

    plan = ColumnPlan((ColumnSpec("tz", "TIMESTAMP_TZ", "timestamp", FEATURE),
                       ColumnSpec("ltz", "TIMESTAMP_LTZ", "timestamp", FEATURE),
                       ColumnSpec("ntz", "TIMESTAMP_NTZ", "timestamp", FEATURE), ColumnSpec("y", "REAL", "numeric", LABEL)))
    ten = dt.datetime(2013, 1, 1, 10)
    instants = pa.array([ten.replace(tzinfo=dt.timezone.utc)] * 5 + [None, None], pa.timestamp("ns", tz="Etc/UTC"))
    clocks = pa.array([ten] * 4 + [ten.replace(hour=12), None, None], pa.timestamp("ns"))
    job = plan.matrix(plan.to_spill([instants, instants, clocks, pa.array([0.0] * 7)]))[0]
    zoned = ["2013-01-01T10:00:00Z", "2013-01-01 10:00:00+00:00", "2013-01-01T05:00:00.000-0500",
             "2013-01-01 15:30:00+05:30", "2013-01-01 10:00:00", None, "NaT"]  # no offset: UTC
    wall = ["2013-01-01T10:00:00Z", "2013-01-01 10:00:00+00:00", "2013-01-01T10:00:00.000-0500",
            "2013-01-01 10:00:00+05:30", "2013-01-01 12:00:00", None, "NaT"]
    rows = plan.feature_matrix(pd.DataFrame({"tz": zoned, "ltz": zoned, "ntz": wall}))
    np.testing.assert_array_equal(rows, job)
    assert job[0].tolist() == [np.float32(1357034400.0)] * 3  # 2013-01-01 10:00 UTC
    tz_aware = pd.DataFrame({"ntz": pd.to_datetime(["2013-01-01 10:00:00+05:30"])})  # a caller's tz-aware pandas
    assert plan.feature_matrix(tz_aware)[0, 2] == job[0, 2]  # NTZ: its clock reading, 10:00
    # as Snowflake itself prints them (a space before the offset), and a lowercase z
    exported = pd.DataFrame({"tz": ["2013-01-01 10:00:00.000 +0000", "2013-01-01 15:30:00.000 +0530",
                                    "2013-01-01t10:00:00z"],
                             "ntz": ["2013-01-01 10:00:00.000 +0000", "2013-01-01 10:00:00.000 -0800",
                                     "2013-01-01T10:00:00z"]})
    got = plan.feature_matrix(exported)
    assert got[:, 0].tolist() == [np.float32(1357034400.0)] * 3 and got[:, 2].tolist() == [job[0, 2]] * 3


def test_raw_values_that_cannot_score_name_their_column_and_unseen_categories_are_counted():
    import pandas as pd

    from training.read.columns import RowError

    plan = PLAN.with_vocabularies({"Region": ("north", "south"), "Label": ("a", "b")})
    rows = pd.DataFrame({"Region": ["north", "atlantis", None, ""], "price": [1.0, 2.0, None, 3.0]})
    assert plan.unseen_categories(rows).tolist() == [0, 1, 0, 1]  # NULL is not unseen; "" is text
    assert np.isnan(plan.feature_matrix(rows)[1, 2])  # and an unseen value scores as missing, as in training
    with pytest.raises(RowError, match=r"^column 'price' \(FIXED\) has a value beyond float32's range \(3.4e38\) in "
                                       r"row 2, which XGBoost cannot score"):
        plan.feature_matrix(pd.DataFrame({"price": [1.0, 1e39]}))
    with pytest.raises(RowError, match=r"^column 'd' \(DATE\): Failed to parse string: 'someday'.*: send an ISO 8601 "
                                       r"date such as 2024-01-31, or NULL$"):
        plan.feature_matrix(pd.DataFrame({"d": ["someday"]}))
