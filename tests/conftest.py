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
