"""Fixtures every test shares. The local stand-ins live in tests/integration/conftest.py: unit tests
never start (or import) them."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _restore_environ():
    """Undo process-wide environment changes a test causes (mlflow.set_tracking_uri sets one)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


SLOWEST_FIRST = ("test_bench_smoke.py", "test_real_tables.py", "test_tracking_migration.py", "test_bad_input.py",
                 "test_faults.py", "test_objectives.py", "test_tracking_jobs.py", "test_tracking_server.py",
                 "test_training.py", "test_local_user_job.py")
"""The test files that take a minute or more, longest first (measured with --durations)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest files first (the order otherwise kept): with ``make test``'s two workers, each taking
    whole files in this order, no long file is left to run alone at the end."""
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOWEST_FIRST)))
