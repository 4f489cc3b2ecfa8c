"""The collective ledger's comparison: what the local mode and the tests tell a user when hosts fall out of step."""

from __future__ import annotations

from pathlib import Path

from launch.local.hosts import _collect
from training.ledger import Ledger, compare_ledgers, ledger_path, read_ledger

VERDICT = "round 1: stop verdict\tallreduce:max\tint32\t(3,)"
METRIC = "xgboost:_allreduce_metric\tallreduce:sum\tfloat64\t(1,)"


def test_equal_ledgers_compare_equal_and_one_host_has_nothing_to_compare() -> None:
    assert compare_ledgers({"a": [METRIC, VERDICT], "b": [METRIC, VERDICT]}, complete=True) is None
    assert compare_ledgers({"a": [METRIC]}, complete=True) is None


def test_the_first_divergent_call_is_named_with_each_hosts_call() -> None:
    found = compare_ledgers({"a": [METRIC, VERDICT, METRIC], "b": [METRIC, METRIC, VERDICT], "c": [METRIC] * 3},
                            complete=True)
    assert found == ("the hosts' collective calls differ at call #2: a made 'round 1: stop verdict allreduce:max "
                     "int32 (3,)'; b made 'xgboost:_allreduce_metric allreduce:sum float64 (1,)'; c made "
                     "'xgboost:_allreduce_metric allreduce:sum float64 (1,)'")


def test_a_host_that_stopped_early_counts_only_when_the_job_succeeded() -> None:
    ledgers = {"a": [METRIC, VERDICT], "b": [METRIC]}
    assert compare_ledgers(ledgers, complete=False) is None  # b failed; a waited in a call b never made
    assert compare_ledgers(ledgers, complete=True) == (
        "the hosts made different numbers of collective calls (a 2, b 1): after call #1, a made "
        "'round 1: stop verdict allreduce:max int32 (3,)' and b none")


def test_a_ledger_file_holds_one_numbered_line_per_call_and_reads_back(tmp_path: Path) -> None:
    ledger = Ledger(ledger_path(tmp_path / "ledgers", "127.0.0.1"))
    for _ in range(7):
        ledger.record("round 1: stop verdict", "allreduce:max", "int32", "(3,)")
    assert (tmp_path / "ledgers" / "127.0.0.1.ledger").read_text().splitlines()[6] == f"7\t{VERDICT}"
    ledger.close()
    assert read_ledger(ledger_path(tmp_path / "ledgers", "127.0.0.1")) == [VERDICT] * 7
    assert ledger.calls == 7 and ledger.last_calls().startswith("#3 round 1: stop verdict allreduce:max int32 (3,)")
    other = Ledger()
    for _ in range(7):
        other.record("round 1: stop verdict", "allreduce:max", "int32", "(3,)")
    assert other.digest == ledger.digest  # what each host logs as it leaves: equal calls, equal digests


def test_a_local_job_whose_hosts_called_differently_fails_with_the_first_difference(tmp_path: Path) -> None:
    """Even when every host exited 0: the model may be wrong (same-shape calls pair silently)."""
    hosts = [tmp_path / "jobs" / "j" / h for h in ("127.0.0.1", "127.0.0.2")]
    ledgers = tmp_path / "jobs" / "j" / "ledgers"
    ledgers.mkdir(parents=True)
    (ledgers / "127.0.0.1.ledger").write_text(f"1\t{METRIC}\n2\t{VERDICT}\n")
    (ledgers / "127.0.0.2.ledger").write_text(f"1\t{VERDICT}\n2\t{METRIC}\n")
    result = _collect("j", hosts, [0, 0])
    assert result.exit_code == 1
    assert result.failure is not None and result.failure.startswith("the hosts' collective calls differ at call #1: ")
    assert result.ledger_mismatch is not None and "127.0.0.2 made 'round 1: stop verdict" in result.ledger_mismatch
    (ledgers / "127.0.0.2.ledger").write_text(f"1\t{METRIC}\n2\t{VERDICT}\n")
    assert _collect("j", hosts, [0, 0]).exit_code == 0
