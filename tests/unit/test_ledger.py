"""The collective ledger's comparison: what the local mode and the tests tell a user when hosts fall out of step."""

from __future__ import annotations

from pathlib import Path

from training.collective.ledger import Ledger, compare_ledgers, ledger_path, read_ledger

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
