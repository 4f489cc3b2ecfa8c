"""A Snowflake name in hyperparameters has every valid reading kept, and the table decides which is meant:
never a wrong column picked silently."""

import json

import pytest

from training.errors import HyperparameterError, SnowflakeError
from training.hyperparameters import parse_hyperparameters
from training.read import names


@pytest.mark.parametrize(
    ("raw", "readings"),
    [
        ("Label", ("Label",)),  # bare: one reading (LABEL)
        ('"Label"', ('"Label"', "Label")),  # SDK v3 quoted name, or SDK v2's JSON for the bare name
        (json.dumps('"Label"'), ('"Label"',)),  # JSON-encoded quoted name: only the quoted one
        ('"Key Col"', ('"Key Col"',)),  # the decoded text is not a valid name
        ('"Y"', ('"Y"', "Y")),  # both readings name the same column Y
    ],
)
def test_readings_keep_every_valid_meaning(raw, readings):
    assert names.readings("target", raw) == readings


def test_lists_split_on_commas_outside_quotes():
    assert names.split_names(' a, "B,c" ,"Units Sold"') == ["a", '"B,c"', '"Units Sold"']
    assert names.readings("features", '"a,b"') == ('"a,b"', "a,b")


COLUMNS = ["id", "Label", "LABEL", "Spend", "PRICE", "Units Sold"]


@pytest.mark.parametrize(
    ("key", "raw", "resolved"),
    [
        ("target", "price", ["PRICE"]),
        ("target", '"Spend"', ["Spend"]),  # only the quoted reading exists
        ("target", '"PRICE"', ["PRICE"]),  # both readings are PRICE
        ("target", json.dumps('"Label"'), ["Label"]),
        ("target", "Label", ["LABEL"]),
        ("features", '"Units Sold",price,"id"', ["Units Sold", "PRICE", "id"]),
    ],
)
def test_names_resolve_against_the_tables_columns(key, raw, resolved):
    assert names.resolve_columns(key, names.readings(key, raw), COLUMNS, "T") == resolved


def test_a_name_that_means_two_columns_fails_and_says_how_to_write_each():
    with pytest.raises(SnowflakeError) as err:
        names.resolve_columns("target", names.readings("target", '"Label"'), COLUMNS, "T")
    message = str(err.value)
    assert "matches two different column sets of the table, Label (read as quoted names) and LABEL" in message
    assert '("\\"Label\\"")' in message and "write it without the outer quotes" in message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("spend", "target column 'spend' is not in table 'T' (unquoted names mean upper case in Snowflake), but "
                  "column 'Spend' is: write it as \"Spend\""),
        ('"units sold"', "target column '\"units sold\"' is not in table 'T' (quoted names are case-sensitive), but "
                         "column 'Units Sold' is: write it as \"Units Sold\""),
        ('"Id"', "but column 'id' is: write it as \"id\""),
        ("cost", "target column 'cost' is not in table 'T' (columns: id, Label, LABEL, Spend, PRICE, Units Sold)"),
    ],
)
def test_a_missing_name_names_the_near_column_and_how_to_write_it(raw, fragment):
    with pytest.raises(SnowflakeError) as err:
        names.resolve_columns("target", names.readings("target", raw), COLUMNS, "T")
    assert fragment in str(err.value)


@pytest.mark.parametrize("text", ["Label", '"Label"', '"a,b"', 'DB."My Schema".T', '"Price","Units Sold"'])
def test_what_the_launcher_sends_has_exactly_one_reading_and_it_is_the_users(text):
    key = "features" if "," in text else "table" if "." in text else "target"
    sent = names.encode(key, text)
    assert names.readings(key, sent) == (text,)


def test_the_container_keeps_readings_and_rejects_injection_before_any_call():
    hps = parse_hyperparameters({"table": "t", "target": '"Label"', "weight_column": '"w"'})
    assert hps.readings["target"] == ('"Label"', "Label") and hps.readings["weight_column"] == ('"w"', "w")
    with pytest.raises(HyperparameterError, match="weight column"):
        parse_hyperparameters({"table": "t", "target": "y", "weight_column": 'w" FROM x --'})
    with pytest.raises(HyperparameterError, match="names more than one column"):
        parse_hyperparameters({"table": "t", "target": "a,b"})
