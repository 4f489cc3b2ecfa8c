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


SLOWEST_FIRST = ("test_bad_input.py", "test_faults.py", "test_tracking_jobs.py", "test_tracking_server.py",
                 "test_training.py", "test_bench_smoke.py", "test_local_user_job.py", "test_real_tables.py",
                 "test_soak.py", "test_builtin_parity.py", "test_tracking_faults.py", "test_local_snowflake.py", "test_bench_scoring.py",
                 "test_tracking_migration.py", "test_image_env.py", "test_launcher_moto.py", "test_objectives.py")
"""The test files that take 20 s or more, longest first (measured with --durations on 2 cores: 70 s to 20 s)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest files first (the order otherwise kept): with ``make test``'s two workers, each taking
    whole files in this order (``--no-loadscope-reorder``: pytest-xdist would otherwise hand out the files
    with the most tests first), no long file is left to run alone at the end."""
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOWEST_FIRST)))
