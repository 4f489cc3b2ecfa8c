"""Read mode scan: how the leader deals one result's batches to the hosts."""

from __future__ import annotations

import pytest

from training.read.scan import deal

SNOWFLAKE_LIKE = [1_000, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 50_000, 50_000, 50_000, 17_500]
"""An inline part, then chunks that double up to a cap (what the local Snowflake sends for 200,000 rows)."""


@pytest.mark.parametrize("hosts", [1, 2, 3, 4, 7])
def test_every_batch_goes_to_exactly_one_host_and_rows_balance_within_one_batch(hosts: int) -> None:
    shares = deal(SNOWFLAKE_LIKE, hosts)
    assert len(shares) == hosts
    assert sorted(i for share in shares for i in share) == list(range(len(SNOWFLAKE_LIKE)))
    loads = [sum(SNOWFLAKE_LIKE[i] for i in share) for share in shares]
    assert max(loads) - min(loads) <= max(SNOWFLAKE_LIKE)
    assert all(share == sorted(share) for share in shares)  # each host reads its batches in result order


def test_the_deal_depends_only_on_the_row_counts() -> None:
    assert deal(SNOWFLAKE_LIKE, 3) == deal(list(SNOWFLAKE_LIKE), 3)
    assert deal([5, 5, 5, 5], 2) == [[0, 2], [1, 3]]


def test_a_result_in_fewer_batches_than_hosts_leaves_hosts_empty() -> None:
    assert deal([20_640], 3) == [[0], [], []]
    assert deal([], 2) == [[], []]


@pytest.mark.parametrize("kind", ["connection", "forbidden"])
def test_a_chunk_that_cannot_be_downloaded_fails_in_one_line_without_its_url(kind: str) -> None:
    """After the connector's retries, a refused connection surfaces as requests' own exception (its
    text holds the presigned path), a 403 as the connector's error: either becomes one line."""
    from concurrent.futures import Future

    from snowflake.connector.errors import ForbiddenError
    from snowflake.connector.vendored.requests.exceptions import ConnectionError as RequestsConnectionError

    from training.errors import SnowflakeError
    from training.read.scan import _result

    url = "/r/data_0_3?X-Amz-Signature=abc123&x-amz-server-side-encryption-customer-key=k"
    future: Future = Future()
    future.set_exception(RequestsConnectionError(f"Max retries exceeded with url: {url}") if kind == "connection"
                         else ForbiddenError(msg=f"403 for {url}", errno=290403))
    with pytest.raises(SnowflakeError) as info:
        _result(future, 3, 7)
    message = str(info.value)
    assert message.startswith("could not download result batch 3 of 7 (")
    assert "abc123" not in message and "data_0_3" not in message and "\n" not in message


def test_the_first_batch_is_read_alone_then_the_rest_side_by_side() -> None:
    """Two threads making the connector's first Arrow reader at once can deadlock (its C++ logger's
    set-up): the first batch's read ends before any other starts; the rest overlap, in order."""
    import threading
    import time

    import pyarrow as pa

    from training.read.scan import ScanShare, download

    events: list[str] = []
    lock = threading.Lock()

    class Batch:
        def __init__(self, number: int) -> None:
            self.number = number

        def to_arrow(self) -> pa.Table:
            with lock:
                events.append(f"start {self.number}")
            time.sleep(0.05)
            with lock:
                events.append(f"end {self.number}")
            return pa.table({"n": [self.number]})

    share = ScanShare([Batch(n) for n in range(1, 6)], [1, 2, 3, 4, 5], "q", "t", 5, 5)
    tables = list(download(share, threads=3))
    assert [t.column("n")[0].as_py() for t in tables] == [1, 2, 3, 4, 5]
    assert events[:2] == ["start 1", "end 1"]
    assert events.index("start 3") < events.index("end 2")  # after the first, downloads overlap
