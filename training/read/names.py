"""Snowflake names as users write them in hyperparameters, and how they resolve against a table.

A hyperparameter arrives as text, and the same text can mean two things. SDK v3 (and the
SageMaker console) pass strings as they are, so ``"Label"`` is the *quoted* identifier, the
case-sensitive column ``Label``. SDK v2's ``Estimator`` JSON-encodes every value, so the same
text ``"Label"`` is the encoding of the *bare* name ``Label``, which Snowflake reads as
``LABEL``. No parsing rule can tell them apart; the table can. So a name keeps every reading
that is a valid identifier (:func:`readings`), and the job resolves them against the table's
columns (:func:`resolve_columns`):

- the one reading whose columns exist is used;
- if two readings name different columns that both exist, the job fails and says how to write
  each one unambiguously (JSON-encode the quoted name once more, or write the bare name);
- if none exists but a column matches case-insensitively, the job fails naming that column
  and how to write it. A wrong column is never picked silently.

Our launcher encodes these names itself (:func:`encode`), so what it sends has one reading.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from training.errors import HyperparameterError, SnowflakeError
from training.read.snowflake import IDENTIFIER, quote_part, quote_table, unquoted

IDENTIFIER_KEYS = ("table", "target", "features", "shard_key", "weight_column", "group_column", "label_lower_column",
                   "label_upper_column")
"""Hyperparameters that name Snowflake objects (validated as identifiers, quoted in SQL)."""
LIST_KEYS = ("features", "shard_key")
"""Identifier hyperparameters that hold a comma-separated list of column names."""

_NAME = re.compile(rf"\s*({IDENTIFIER})\s*")

_WHAT = {"table": "table", "target": "target column", "features": "feature column",
         "shard_key": "shard_key column", "weight_column": "weight column", "group_column": "group column",
         "label_lower_column": "lower bound column", "label_upper_column": "upper bound column"}


def what(key: str) -> str:
    """How messages name a hyperparameter's object (``target column``, ``feature column``)."""
    return _WHAT[key]


def split_names(text: str) -> list[str]:
    """``a, "B,c" ,d`` -> ``['a', '"B,c"', 'd']``: commas inside double quotes belong to the name.

    A piece that is not a valid name is returned as it is, so validation can name it.
    """
    names, pos, text = [], 0, text.strip()
    while pos < len(text):
        match = _NAME.match(text, pos)
        end = match.end() if match else len(text)
        if match and (end == len(text) or text[end] == ","):
            names.append(match.group(1))
        else:
            comma = text.find(",", pos)
            end = len(text) if comma < 0 else comma
            names.append(text[pos:end].strip())
        pos = end + 1
    return [name for name in names if name]


def stored_name(name: str) -> str:
    """The name Snowflake stores for an identifier as written (``price`` -> ``PRICE``, ``"Price"`` -> ``Price``)."""
    return unquoted(quote_part(name, "column"))


def check(key: str, text: str) -> None:
    """Raise :class:`HyperparameterError` unless ``text`` is a valid value of identifier key ``key``."""
    if key == "table":
        quote_table(text)
        return
    names = split_names(text)
    if key not in LIST_KEYS and len(names) > 1:
        raise HyperparameterError(f"{what(key)} {text[:60]!r} names more than one column: give one column")
    for name in names:
        quote_part(name, what(key))


def readings(key: str, raw: str) -> tuple[str, ...]:
    """Every valid reading of ``raw``: as written, and as the JSON string it may encode.

    Raises the validation error of the likeliest meaning when none is valid (an injection
    attempt fails here, before any secret is read or Snowflake is contacted).
    """
    raw = raw.strip()
    decoded = _json_string(raw)
    candidates = [raw] if decoded is None else [raw, decoded.strip()]
    valid = []
    for text in candidates:
        try:
            check(key, text)
        except HyperparameterError:
            continue
        if text not in valid:
            valid.append(text)
    if not valid:
        check(key, candidates[-1])  # raises with the message for what the user most likely meant
    return tuple(valid)


def _json_string(raw: str) -> str | None:
    if not raw.startswith('"'):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, str) and value.strip() != raw else None


def encode(key: str, text: str) -> str:
    """What a launcher sends for identifier ``key``, so that it has exactly one reading.

    Only a text that is itself one JSON string (a lone quoted name, ``"Label"``) has two readings;
    JSON-encoding it once more leaves one (``"\\"Label\\""`` can only mean the quoted name).
    Everything else (``LABEL``, ``DB."My Schema".T``, ``"a","B"``) is sent as it is.
    """
    if key not in IDENTIFIER_KEYS:
        return text
    try:
        return json.dumps(text) if len(readings(key, text)) > 1 else text
    except HyperparameterError:
        return text  # invalid either way: the container's check names the problem


def table_sql_readings(texts: Sequence[str]) -> dict[str, str]:
    """The distinct quoted SQL forms of a table's readings (``"A.B"`` vs ``"A"."B"``), each with its text."""
    out: dict[str, str] = {}
    for text in texts:
        out.setdefault(quote_table(text), text)
    return out


def resolve_columns(key: str, texts: Sequence[str], columns: Sequence[str], table: str) -> list[str]:
    """The table's column names that the readings ``texts`` of hyperparameter ``key`` mean."""
    present = set(columns)
    found: list[list[str]] = []
    for text in texts:
        names = [stored_name(n) for n in split_names(text)]
        if all(n in present for n in names) and names not in found:
            found.append(names)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise SnowflakeError(_ambiguous(key, texts[0], found))
    raise SnowflakeError(_missing(key, texts, columns, table))


def _ambiguous(key: str, given: str, found: list[list[str]]) -> str:
    quoted, bare = (", ".join(names) for names in found[:2])
    return (f"{what(key)} {given!r} matches two different column sets of the table, {quoted} (read as quoted "
            f"names) and {bare} (read as JSON for {json.loads(given)!r}): to mean {quoted} JSON-encode it once more "
            f"({json.dumps(given)}); to mean {bare} write it without the outer quotes")


def _missing(key: str, texts: Sequence[str], columns: Sequence[str], table: str) -> str:
    given = texts[0]
    by_fold = {c.casefold(): c for c in columns}
    for text in texts:
        for name in split_names(text):
            stored = stored_name(name)
            if stored in columns:
                continue
            near = by_fold.get(stored.casefold())
            if near is not None:
                how = near if re.fullmatch(r"[A-Z_][A-Z0-9_$]*", near) else f'"{near}"'
                reason = ("unquoted names mean upper case in Snowflake" if not name.startswith('"')
                          else "quoted names are case-sensitive")
                return (f"{what(key)} {name!r} is not in table {table!r} ({reason}), but column {near!r} is: "
                        f"write it as {how}")
    shown = ", ".join(list(columns)[:20])
    return f"{what(key)} {given!r} is not in table {table!r} (columns: {shown}): fix the hyperparameter"


def resolve_table(texts: Sequence[str], describe: Callable[[str], list | None],
                  table: str) -> tuple[str, str, list]:
    """The one reading of the table name that exists: ``(its text, quoted SQL, describe's result)``.

    ``describe(sql)`` returns the table's columns, or None when no such table is visible.
    """
    found = [(text, sql, cols) for sql, text in table_sql_readings(texts).items()
             if (cols := describe(sql)) is not None]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise SnowflakeError(
            f"table {table!r} names two different tables, {found[0][1]} and {found[1][1]}: to mean the first "
            f"JSON-encode it once more ({json.dumps(table)}); to mean the second write it without the outer quotes")
    raise SnowflakeError(
        f"table {table!r} does not exist or the role cannot see it: check the 'table' "
        "hyperparameter and the secret's database, schema and role"
    )
