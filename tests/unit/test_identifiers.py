"""User-given identifiers are validated and quoted; nothing user-given reaches SQL raw."""

import pytest

from training.errors import DataError, HyperparameterError, SnowflakeError
from training.hyperparameters import parse_hyperparameters
from training.read.plan import plan_shard
from training.read.snowflake import Column, quote_part, quote_table


@pytest.mark.parametrize(
    ("given", "quoted"),
    [
        ("houses", '"HOUSES"'),
        ("db.sch.houses", '"DB"."SCH"."HOUSES"'),
        ('"Mixed Case"', '"Mixed Case"'),
        ('DB."My Schema".T$1', '"DB"."My Schema"."T$1"'),
    ],
)
def test_valid_table_names_are_quoted(given, quoted):
    assert quote_table(given) == quoted


@pytest.mark.parametrize(
    "given",
    ["x; DROP TABLE y", 'x"; DROP TABLE y; --', "a.b.c.d", "1abc", "t -- comment", "", 'a"b', "t)", "t' OR '1'='1"],
)
def test_injection_attempts_are_rejected(given):
    with pytest.raises(HyperparameterError, match="not a valid Snowflake"):
        quote_table(given)


def test_column_names_with_quotes_are_rejected():
    with pytest.raises(HyperparameterError):
        quote_part('Y" FROM x --', "target column")


COLUMNS = [Column("ID", 0), Column("F0", 1), Column("F1", 0), Column("NAME", 2), Column("DOC", 5), Column("Y", 1)]


def _hps(**kw):
    return parse_hyperparameters({"table": "db.s.t", "target": "y", **kw})


def test_plan_uses_only_quoted_identifiers_and_bind_parameters():
    plan = plan_shard(COLUMNS, _hps(features="f0,F1", shard_key="id").read_options())
    sql = plan.query_template
    assert sql.startswith('SELECT "F0", "F1", "Y", ')
    assert 'FROM "DB"."S"."T" WHERE MOD(ABS(HASH("ID")), %(modulus)s) = %(remainder)s' in sql
    assert "%(split_cut)s" in sql and "%(split_salt)s" in sql


def test_missing_target_names_the_columns():
    with pytest.raises(SnowflakeError, match="target column 'price' is not in table 'db.s.t'.*ID, F0"):
        plan_shard(COLUMNS, parse_hyperparameters({"table": "db.s.t", "target": "price"}).read_options())


def test_listed_variant_feature_is_rejected_with_the_fix():
    with pytest.raises(DataError, match="column 'DOC' is VARIANT, which the job cannot train on: drop it from "
                                        "'features'"):
        plan_shard(COLUMNS, _hps(shard_key="ID", features="F0,DOC").read_options())


def test_default_features_exclude_target_shard_key_and_untrainable_types(caplog):
    plan = plan_shard(COLUMNS, _hps(shard_key="ID").read_options())
    assert plan.features == ("F0", "F1", "NAME") and plan.key == ("ID",)
    assert [c.kind for c in plan.columns.features] == ["numeric", "numeric", "categorical"]
    assert "left out 1 column(s) of types the job cannot train on: DOC (VARIANT)" in caplog.text
