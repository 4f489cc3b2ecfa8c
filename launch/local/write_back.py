"""The write path of a scoring job on the local Snowflake: ``write_pandas``, ``SWAP WITH``, DDL commits.

A scoring job writes its predictions back as Snowflake lets a client do it all or nothing: every
host loads its rows into a staging table with the connector's bulk path
(``snowflake.connector.pandas_tools.write_pandas``: ``CREATE TEMP STAGE``, ``PUT`` of Parquet
files, ``INFER_SCHEMA``, ``CREATE TABLE``, ``COPY INTO``, and for ``overwrite=True`` ``DROP`` +
``ALTER TABLE ... RENAME``), then the leader makes the target appear whole with
``ALTER TABLE target SWAP WITH staging``. Against fakesnow 0.12.1's server, through the unmodified
connector 4.x, it differs from Snowflake thus (each *seen*), and :func:`install` makes it faithful:

- **Qualified names through ``identifier(?)``.** ``write_pandas(..., database=, schema=)`` binds
  ``"DB"."SCHEMA"."NAME"``; fakesnow reads a bound name that starts and ends with a quote as *one*
  quoted identifier, so the stage, the table, the drop and the rename all miss (the ``PUT`` then
  fails with ``KeyError: 'command'`` in the connector). Here the name is split on the dots outside
  quotes, ``""`` inside quotes being one quote, as Snowflake does.
- **``INFER_SCHEMA``.** ``SELECT COLUMN_NAME, TYPE FROM table(infer_schema(location=>?,
  file_format=>?))`` (run by ``auto_create_table=True`` and ``overwrite=True``) is a parse error in
  fakesnow. Here it answers the Parquet schema of the files in the stage, with Snowflake's types
  (``NUMBER(38, 0)``, ``REAL``, ``TEXT``, ``BOOLEAN``, ``TIMESTAMP_NTZ(9)``, ``DATE``, ...).
- **A quoted stage in ``COPY``.** ``COPY INTO t (...) FROM (SELECT $1:"A" FROM '@"STAGE"')`` (the
  stage as a string literal, as ``write_pandas`` writes it) fails in fakesnow with "invalid URL
  prefix"; Snowflake reads it as the stage. Here it becomes ``FROM @"STAGE"``.
- **``ALTER TABLE a SWAP WITH b``** is a parse error in fakesnow. Here the two tables exchange
  names (rows, columns, everything) in one DuckDB transaction: another connection sees both old
  tables or both new ones, never one of each; a swap that fails (a table missing: Snowflake's
  002003 "Object ... does not exist or not authorized.") leaves both as they were.
- **``CREATE OR REPLACE TABLE t CLONE s``** fails in fakesnow when ``t`` exists ("already
  exists"); Snowflake replaces it in one transaction. Here ``t`` is dropped and ``s`` copied into
  it in one DuckDB transaction.
- **DDL inside a transaction.** In Snowflake a DDL statement (CREATE, ALTER, DROP, ...) commits the
  open transaction, then runs in its own: ``BEGIN; INSERT ...; CREATE TABLE ...; ROLLBACK`` keeps
  the insert and the table, and ``BEGIN; DROP target; ALTER TABLE staging RENAME TO target;
  ROLLBACK`` is *not* undone. fakesnow (autocommit sessions, the connector's default) runs DDL in
  DuckDB's transaction, so the rollback undid both, promising an atomicity Snowflake does not give.
  Here the open transaction is committed before each DDL statement, as Snowflake does.

Works as on Snowflake without a patch (seen through the connector): ``ALTER TABLE a RENAME TO b``
(an existing ``b`` is refused), ``CREATE OR REPLACE TABLE t AS SELECT``, ``CREATE TABLE t CLONE s``
(a copy: DuckDB has no zero-copy clone), ``DROP TABLE IF EXISTS``, ``SHOW TABLES
LIKE``, ``BEGIN``/``COMMIT``/``ROLLBACK`` around DML, and ``PUT``/``COPY`` from several connections
at once (each ``write_pandas`` has its own randomly named stage; appends into one table from
several clients land every row once).

What it still does not do: ``SWAP WITH`` only between tables of one schema (another schema is
refused with a message saying so), and comments, grants, table stages and fakesnow's own metadata
do not follow the swapped names; ``INFER_SCHEMA`` reads Parquet only (the ``file_format`` is not
looked at), maps every integer to ``NUMBER(38, 0)`` and any nested type to ``VARIANT``; it does not
reproduce Snowflake's reading of Parquet timestamps without ``use_logical_type=True`` (Snowflake
can store garbage there: pass ``use_logical_type=True``); the DDL commit is found by the
statement's first word (``CREATE``, ``ALTER``, ``DROP``, ``UNDROP``, ``COMMENT``, ``GRANT``,
``REVOKE``, ``TRUNCATE`` is DML in Snowflake and is left in the transaction); names are
case-insensitive in DuckDB, so an unquoted ``scores`` also finds a table created as ``"Scores"``
(Snowflake would say it does not exist); names are found by patterns, so the same text inside a
string literal would be rewritten too.

**Privileges: one of them.** fakesnow has no roles: every session may do anything. The tables named
in :data:`READ_ONLY_ENV` (``DB.SCHEMA.TABLE``, comma-separated, as Snowflake resolves the names) are
the exception: a statement that writes to one (``INSERT [OVERWRITE] INTO``, ``COPY INTO``, ``DELETE``, ``UPDATE``,
``MERGE``, ``TRUNCATE``, ``ALTER TABLE`` including either side of a swap, ``DROP TABLE``, ``CREATE OR
REPLACE``) is refused as Snowflake refuses a role without the privilege: 003001, SQL state 42501,
"SQL access control error: Insufficient privileges to operate on table 'NAME'". That is how a test
stages "the role cannot replace the target"; grants themselves (``GRANT``/``REVOKE``) change nothing
here, and a table renamed *to* a read-only name is not refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from launch.local import query_route
from launch.local.query_route import Refused

_PART = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_NAME = rf"{_PART}(?:\s*\.\s*{_PART}){{0,2}}"
_COMMENT = r"(?:\s|/\*.*?\*/|--[^\n]*\n)*"
SWAP = re.compile(rf"^{_COMMENT}ALTER\s+TABLE\s+(?P<if>IF\s+EXISTS\s+)?(?P<a>{_NAME})\s+SWAP\s+WITH\s+(?P<b>{_NAME})"
                  rf"\s*;?\s*$", re.IGNORECASE | re.DOTALL)
"""``ALTER TABLE [IF EXISTS] <a> SWAP WITH <b>``."""
INFER_SCHEMA = re.compile(r"\btable\s*\(\s*infer_schema\s*\(\s*location\s*=>\s*(?P<loc>\?|'(?:[^']|'')*')",
                          re.IGNORECASE)
"""``table(infer_schema(location=>...`` as ``write_pandas`` runs it (a bound or literal location)."""
QUOTED_STAGE = re.compile(r"(\bFROM\s+)'(@(?:[^'\\]|\\.)*)'", re.IGNORECASE)
"""``FROM '@stage'`` inside a ``COPY``'s transformation."""
REPLACE_CLONE = re.compile(rf"^{_COMMENT}CREATE\s+OR\s+REPLACE\s+TABLE\s+(?P<a>{_NAME})\s+CLONE\s+(?P<b>{_NAME})\s*;?\s*$",
                           re.IGNORECASE | re.DOTALL)
"""``CREATE OR REPLACE TABLE <a> CLONE <b>`` (no Time Travel clause)."""
DDL = re.compile(rf"^{_COMMENT}(CREATE|ALTER|DROP|UNDROP|COMMENT|GRANT|REVOKE)\b", re.IGNORECASE | re.DOTALL)
WRITE = re.compile(rf"^{_COMMENT}(?:INSERT\s+(?:OVERWRITE\s+)?INTO|COPY\s+INTO|DELETE\s+FROM|UPDATE|MERGE\s+INTO|"
                   rf"TRUNCATE\s+(?:TABLE\s+)?(?:IF\s+EXISTS\s+)?|ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?|"
                   rf"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?|CREATE\s+OR\s+REPLACE\s+(?:TRANSIENT\s+|TEMP(?:ORARY)?\s+)?"
                   rf"TABLE\s+)\s*(?P<name>{_NAME})", re.IGNORECASE | re.DOTALL)
"""A statement that writes to the table it names first (a swap's second table: :data:`SWAP`)."""
READ_ONLY_ENV = "LOCAL_SNOWFLAKE_READ_ONLY"
"""Tables no session may write (``DB.SCHEMA.TABLE``, comma-separated): the local Snowflake's one privilege."""
ACCESS_DENIED = "003001"
DONE = "Statement executed successfully."
NOT_FOUND = "002003"


def split_name(text: str) -> list[tuple[str, bool]]:
    """``db.schema."Name"`` as its parts, each with whether it was quoted (``""`` is one quote)."""
    parts, i, text = [], 0, text.strip()
    while i <= len(text):
        if text[i:i + 1] == '"':
            j, value = i + 1, []
            while j < len(text):
                if text[j] == '"':
                    if text[j + 1:j + 2] == '"':
                        value.append('"')
                        j += 2
                        continue
                    break
                value.append(text[j])
                j += 1
            parts.append(("".join(value), True))
            i = j + 1
        else:
            end = text.find(".", i)
            end = len(text) if end < 0 else end
            parts.append((text[i:end].strip(), False))
            i = end
        while i < len(text) and text[i] in " \t":
            i += 1
        if i >= len(text) or text[i] != ".":
            break
        i += 1
    return parts


def resolve(name: str, database: str | None, schema: str | None) -> tuple[str, str, str]:
    """The (database, schema, table) a Snowflake name means: unquoted parts upper-cased."""
    parts = [value if quoted else value.upper() for value, quoted in split_name(name)]
    full = [database, schema][:3 - len(parts)] + parts if len(parts) < 3 else parts
    if len(full) != 3 or not all(full):
        raise Refused("090105", f"Cannot perform operation. This session does not have a current database or schema "
                                f"for '{name}'.", "22000")
    return full[0], full[1], full[2]  # type: ignore[return-value]


def _quote(part: str) -> str:
    return '"' + part.replace('"', '""') + '"'


def _table_exists(duck: Any, database: str, schema: str, table: str) -> bool:
    rows = duck.execute("SELECT 1 FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
                        "AND table_name = ? AND NOT temporary", [database, schema, table]).fetchall()
    return bool(rows)


def commit_open_transaction(duck: Any) -> None:
    """Commit the session's open transaction, if any (Snowflake does before every DDL statement)."""
    import duckdb

    try:
        duck.commit()
    except duckdb.TransactionException:
        pass  # none open


def swap(duck: Any, database: str | None, schema: str | None, a: str, b: str, if_exists: bool = False) -> None:
    """``ALTER TABLE a SWAP WITH b`` on a fakesnow session's DuckDB connection, in one transaction."""
    first, second = resolve(a, database, schema), resolve(b, database, schema)
    commit_open_transaction(duck)
    for db, sch, table in (first, second):
        if not _table_exists(duck, db, sch, table):
            if if_exists and (db, sch, table) == first:
                return
            raise Refused(NOT_FOUND, f"SQL compilation error:\nObject '{db}.{sch}.{table}' does not exist or not "
                                     "authorized.")
    if first[:2] != second[:2]:
        raise Refused("000002", "Unsupported feature: the local Snowflake swaps tables of one schema only "
                               f"({'.'.join(first)}, {'.'.join(second)})", "0A000")
    if first == second:
        return
    where = f"{_quote(first[0])}.{_quote(first[1])}."
    hold = f"_fs_swap_{os.getpid()}_{id(duck)}"
    duck.begin()
    try:
        duck.execute(f"ALTER TABLE {where}{_quote(first[2])} RENAME TO {_quote(hold)}")
        duck.execute(f"ALTER TABLE {where}{_quote(second[2])} RENAME TO {_quote(first[2])}")
        duck.execute(f"ALTER TABLE {where}{_quote(hold)} RENAME TO {_quote(second[2])}")
        duck.commit()
    except Exception as err:
        duck.rollback()
        raise Refused("000603", f"SQL execution internal error: swap failed: {err}", "XX000") from err


def replace_clone(duck: Any, database: str | None, schema: str | None, target: str, source: str) -> None:
    """``CREATE OR REPLACE TABLE target CLONE source`` on a DuckDB connection: drop and copy in one transaction."""
    new, old = resolve(target, database, schema), resolve(source, database, schema)
    commit_open_transaction(duck)
    if not _table_exists(duck, *old):
        raise Refused(NOT_FOUND, f"SQL compilation error:\nObject '{'.'.join(old)}' does not exist or not authorized.")
    if new == old:
        return
    duck.begin()
    try:
        duck.execute(f"DROP TABLE IF EXISTS {'.'.join(map(_quote, new))}")
        duck.execute(f"CREATE TABLE {'.'.join(map(_quote, new))} AS SELECT * FROM {'.'.join(map(_quote, old))}")  # noqa: S608  quoted names
        duck.commit()
    except Exception as err:
        duck.rollback()
        raise Refused("000603", f"SQL execution internal error: clone failed: {err}", "XX000") from err


def infer_schema_sql(location: str, database: str | None, schema: str | None) -> str:
    """A ``SELECT`` answering ``INFER_SCHEMA`` for the Parquet files in stage ``location`` (``@stage[/path]``)."""
    import pyarrow.parquet as pq
    from fakesnow.transforms import stage

    if not location.startswith("@"):
        raise Refused("001011", f"SQL compilation error:\ninvalid URL prefix found in: '{location}'", "42601")
    name, _, path = location[1:].partition("/")
    db, sch, stage_name = resolve(name, database, schema)
    directory = stage.internal_dir(f"{db}.{sch}.{stage_name}", path)
    files = sorted(os.path.join(root, f) for root, _, names in os.walk(directory) for f in names)
    columns: dict[str, str] = {}
    for file in files:
        for field in pq.read_schema(file):
            columns.setdefault(field.name, snowflake_type(field.type))
    if not columns:
        raise Refused("002003", f"SQL compilation error:\nStage '{db}.{sch}.{stage_name}' has no files to infer "
                                "a schema from.", "02000")
    rows = ", ".join(f"({_literal(n)}, {_literal(t)})" for n, t in columns.items())
    return f'SELECT * FROM (VALUES {rows}) AS t("COLUMN_NAME", "TYPE")'  # noqa: S608  quoted literals


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def snowflake_type(arrow_type: Any) -> str:
    """The type Snowflake's ``INFER_SCHEMA`` gives a Parquet column of this Arrow type."""
    import pyarrow as pa
    import pyarrow.types as t

    if t.is_boolean(arrow_type):
        return "BOOLEAN"
    if t.is_integer(arrow_type):
        return "NUMBER(38, 0)"
    if t.is_floating(arrow_type):
        return "REAL"
    if t.is_decimal(arrow_type):
        return f"NUMBER({arrow_type.precision}, {arrow_type.scale})"
    if t.is_string(arrow_type) or t.is_large_string(arrow_type):
        return "TEXT"
    if t.is_binary(arrow_type) or t.is_large_binary(arrow_type):
        return "BINARY"
    if t.is_timestamp(arrow_type):
        return "TIMESTAMP_TZ(9)" if arrow_type.tz else "TIMESTAMP_NTZ(9)"
    if t.is_date(arrow_type):
        return "DATE"
    if t.is_time(arrow_type):
        return "TIME(9)"
    if isinstance(arrow_type, pa.DictionaryType):
        return snowflake_type(arrow_type.value_type)
    return "VARIANT"


def identifier(original: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """fakesnow's ``identifier(?)`` transform, splitting a bound qualified name as Snowflake does."""
    from sqlglot import exp

    def transform(expression: Any, params: Any) -> Any:
        result = original(expression, params)
        if result is expression or not isinstance(result, exp.Table) or result.args.get("db"):
            return result
        ident = result.this
        if not (isinstance(ident, exp.Identifier) and ident.quoted and '"."' in ident.this):
            return result
        parts = split_name(f'"{ident.this}"')
        names = [exp.Identifier(this=value, quoted=quoted) for value, quoted in parts]
        if len(names) == 2:
            return exp.Table(this=names[1], db=names[0])
        if len(names) == 3:
            return exp.Table(this=names[2], db=names[1], catalog=names[0])
        return result

    return transform


def install(app: Any, server: Any) -> None:
    """Make fakesnow's server ``app`` (module ``server``) faithful on the write path (see the module's doc)."""
    import fakesnow.transforms as transforms
    from starlette.concurrency import run_in_threadpool

    transforms.identifier = identifier(transforms.identifier)

    read_only = {tuple(part if quoted else part.upper() for part, quoted in split_name(name))
                 for name in os.environ.get(READ_ONLY_ENV, "").split(",") if name.strip()}

    async def rewrite(request: Any, body: dict[str, Any]) -> bool:
        sql = body.get("sqlText") or ""
        swapped, cloned, ddl, written = SWAP.match(sql), REPLACE_CLONE.match(sql), DDL.match(sql), WRITE.match(sql)
        if not (swapped or ddl or written and read_only or INFER_SCHEMA.search(sql) or QUOTED_STAGE.search(sql)):
            return False
        session = server.sessions.get(server.to_token(request)) if request.headers.get("Authorization") else None
        if session is None:
            return False  # fakesnow answers a missing session
        if read_only and written:
            for name in (written["name"], *([swapped["b"]] if swapped else [])):
                table = resolve(name, session.database, session.schema)
                if table in read_only:
                    raise Refused(ACCESS_DENIED, "SQL access control error:\nInsufficient privileges to operate on "
                                                 f"table '{table[2]}'", "42501")
        duck = session._duck_conn  # noqa: SLF001
        if swapped:
            await run_in_threadpool(swap, duck, session.database, session.schema, swapped["a"], swapped["b"],
                                    bool(swapped["if"]))
            body["sqlText"], body["bindings"] = f"SELECT {_literal(DONE)} AS \"status\"", None
        elif cloned:
            await run_in_threadpool(replace_clone, duck, session.database, session.schema, cloned["a"], cloned["b"])
            table = split_name(cloned["a"])[-1][0]
            body["sqlText"], body["bindings"] = f"SELECT {_literal(f'Table {table} successfully created.')} " \
                                                'AS "status"', None
        elif ddl:
            await run_in_threadpool(commit_open_transaction, duck)
        if match := INFER_SCHEMA.search(sql):
            bindings = body.get("bindings") or {}
            location = (bindings.get("1", {}).get("value") if match["loc"] == "?"
                        else match["loc"][1:-1].replace("''", "'"))
            body["sqlText"] = await run_in_threadpool(infer_schema_sql, str(location), session.database,
                                                      session.schema)
            body["bindings"] = None
        elif QUOTED_STAGE.search(sql):
            body["sqlText"] = QUOTED_STAGE.sub(lambda m: m[1] + re.sub(r"\\(.)", r"\1", m[2]), sql)
        return True

    query_route.wrap(app, rewrite)
