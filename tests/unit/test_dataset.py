"""The spill files' rows reach XGBoost in steps of ``BATCH_ROWS``, whatever the chunks they came in."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from training.train.dataset import coalesced


def _file(path: Path, sizes: list[int]) -> Path:
    schema = pa.schema([("ID", pa.int64())])
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        start = 0
        for size in sizes:
            writer.write_batch(pa.record_batch([pa.array(range(start, start + size), pa.int64())], schema=schema))
            start += size
    return path


def test_small_chunks_are_coalesced_into_full_steps_in_order(tmp_path: Path) -> None:
    sizes = [796, 416, 794, 1589, 3248, 6437, 12782, 0, 25705]  # a scan shard's first chunks, one empty
    with pa.memory_map(str(_file(tmp_path / "train.arrow", sizes))) as source:
        steps = list(coalesced(pa.ipc.open_file(source), 10_000))
    assert [s.num_rows for s in steps] == [10_000] * 5 + [1_767]
    ids = pa.concat_arrays([s.column(0) for s in steps]).to_pylist()
    assert ids == list(range(sum(sizes)))


def test_a_large_batch_is_sliced_and_an_empty_file_gives_no_step(tmp_path: Path) -> None:
    with pa.memory_map(str(_file(tmp_path / "big.arrow", [25_000]))) as source:
        assert [s.num_rows for s in coalesced(pa.ipc.open_file(source), 10_000)] == [10_000, 10_000, 5_000]
    with pa.memory_map(str(_file(tmp_path / "empty.arrow", []))) as source:
        assert list(coalesced(pa.ipc.open_file(source), 10_000)) == []
