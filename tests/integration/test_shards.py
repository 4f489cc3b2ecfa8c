"""Host shards: disjoint, complete, repeatable, balanced; validation rows belong to one host only.

Runs the training code's own reader (validated plan, shard query, Arrow spill) against the local
Snowflake through the real connector. fakesnow's HASH differs from Snowflake's, so the tests
check properties, never which row lands where.
"""

import json

import numpy as np
import pyarrow as pa
import pytest

from tests.helpers import SYNTH_ROWS, SYNTH_TABLE
from training.hyperparameters import parse_hyperparameters
from training.read.credentials import parse_secret
from training.read.hash_fetch import fetch_shard
from training.read.plan import plan_shard
from training.read.snowflake import connect, describe_table, quote_table

pytestmark = pytest.mark.slow


def _ids(path):
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    return table.column("ID").to_numpy().astype(np.int64)


def _fetch_all(stack, tmp_path, hosts, pages=1, tag="a"):
    creds = parse_secret(json.dumps(stack.snowflake_secret()), "test")
    hps = parse_hyperparameters({"table": f"DEMO.PUBLIC.{SYNTH_TABLE}", "target": "Y", "features": "ID,F0,F1",
                                 "shard_key": "ID", "fetch_pages": str(pages)})
    conn = connect(creds, "t")
    plan = plan_shard(describe_table(conn, quote_table(hps["table"])), hps.read_options())
    conn.close()
    shards = []
    for rank in range(hosts):
        shard = fetch_shard(lambda: connect(creds, "t"), plan, rank, hosts, hps.read_options(), tmp_path / f"{tag}{hosts}-{rank}")
        shards.append((_ids(shard.train_path), _ids(shard.validation_path), shard))
    return shards


@pytest.mark.parametrize("hosts", [1, 2, 3, 4])
def test_shards_partition_the_table_and_repeat(stack, tmp_path, hosts):
    first = _fetch_all(stack, tmp_path, hosts, tag="a")
    every = np.concatenate([np.concatenate([t, v]) for t, v, _ in first])
    assert len(every) == SYNTH_ROWS  # nothing duplicated ...
    assert set(every.tolist()) == set(range(SYNTH_ROWS))  # ... and nothing missing
    sizes = [len(t) + len(v) for t, v, _ in first]
    assert max(sizes) <= 1.05 * SYNTH_ROWS / hosts  # balanced
    validation = np.concatenate([v for _, v, _ in first])
    assert 0.18 < len(validation) / SYNTH_ROWS < 0.22  # validation_fraction 0.2
    assert not set(validation.tolist()) & set(np.concatenate([t for t, _, _ in first]).tolist())
    again = _fetch_all(stack, tmp_path, hosts, tag="b")
    for (t1, v1, _), (t2, v2, _) in zip(first, again, strict=True):
        assert set(t1.tolist()) == set(t2.tolist()) and set(v1.tolist()) == set(v2.tolist())


def test_validation_rows_do_not_depend_on_the_host_count(stack, tmp_path):
    one = set(np.concatenate([v for _, v, _ in _fetch_all(stack, tmp_path, 1, tag="c")]).tolist())
    three = set(np.concatenate([v for _, v, _ in _fetch_all(stack, tmp_path, 3, tag="d")]).tolist())
    assert one == three


def test_pages_split_a_shard_without_changing_it(stack, tmp_path):
    whole = _fetch_all(stack, tmp_path, 2, pages=1, tag="e")
    paged = _fetch_all(stack, tmp_path, 2, pages=4, tag="f")
    for (t1, v1, _), (t2, v2, shard) in zip(whole, paged, strict=True):
        assert sorted(t1.tolist()) == sorted(t2.tolist()) and sorted(v1.tolist()) == sorted(v2.tolist())
        assert len(shard.query_ids) == 4


def test_spill_is_float32_with_nulls_as_nan(stack, tmp_path):
    stack.ensure_table("WITH_NULLS", data="synthetic", rows=2_000, seed=3, null_fraction=0.1)
    creds = parse_secret(json.dumps(stack.snowflake_secret()), "test")
    hps = parse_hyperparameters({"table": "WITH_NULLS", "target": "Y", "shard_key": "ID"})
    conn = connect(creds, "t")
    plan = plan_shard(describe_table(conn, quote_table("WITH_NULLS")), hps.read_options())
    conn.close()
    shard = fetch_shard(lambda: connect(creds, "t"), plan, 0, 1, hps.read_options(), tmp_path / "nulls")
    with pa.memory_map(str(shard.train_path)) as source:
        table = pa.ipc.open_file(source).read_all()
    assert all(field.type == pa.float32() for field in table.schema)
    assert 0.05 < table.column("F0").null_count / table.num_rows < 0.15
    assert shard.non_null[0] == shard.rows - table.column("F0").null_count - _nulls(shard.validation_path, "F0")


def _nulls(path, column):
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all().column(column).null_count
