"""CI's short soak (``make soak`` runs 30): four multi-host jobs, each a kind of risk to the hosts' agreement."""

from __future__ import annotations

from pathlib import Path

import pytest

from launch.local.services import LocalStack
from tests import soak

pytestmark = pytest.mark.slow


def test_a_short_soak_ends_every_job_as_expected_with_equal_ledgers(tmp_path: Path, stack: LocalStack) -> None:
    """Early stopping maximized on the job's own metric (3 hosts, text features), a SIGTERM to the second
    host, two empty shards, external memory: each succeeds or stops naming the signalled host."""
    lines: list[str] = []
    outcomes = soak.soak(soak.short_plan(), tmp_path, stack, lines.append)
    assert all(o.passed for o in outcomes), "\n".join(lines)
    assert [o.kind for o in outcomes] == ["succeeded", "stopped by SIGTERM", "succeeded", "succeeded"], "\n".join(lines)
    assert "0 failed, 0 ledger mismatches" in soak.summary(outcomes, 0.0, 1)
