"""Integration fixtures: the local stand-ins (fakesnow server, moto server) behind the real clients."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from launch.local.hosts import LocalJobResult, run_local_job
from launch.local.services import LocalStack
from tests.helpers import SECRET_ID, SECRET_PASSWORD, SYNTH_ROWS, SYNTH_TABLE
from tests.integration import image_env
from tests.integration.mlflow_server import MlflowServer, mlflow_server
from training import contract


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Local Snowflake and Secrets Manager for the whole session, with the test secret and table."""
    with LocalStack(tmp_path_factory.mktemp("stack"), persist=False) as local:
        local.put_secret(SECRET_ID, local.snowflake_secret(password=SECRET_PASSWORD))
        local.ensure_table(SYNTH_TABLE, data="synthetic", rows=SYNTH_ROWS, seed=7)
        yield local


@pytest.fixture(scope="session")
def job_env(stack: LocalStack) -> dict[str, str]:
    """Environment of a host process: local AWS endpoint and the test secret's id."""
    return {**stack.aws_env(), contract.SECRET_ID_ENV: SECRET_ID, contract.LOGIN_TIMEOUT_ENV: "20",
            contract.NETWORK_TIMEOUT_ENV: "30"}


@pytest.fixture(scope="session")
def shared_tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real ``mlflow server`` for the modules that only add their own experiments to it (a start
    costs 20 s or more on 2 cores); tests that stop or inspect a whole server start their own."""
    with mlflow_server(tmp_path_factory.mktemp("shared-mlflow")) as server:
        yield server


@pytest.fixture
def run_job(tmp_path: Path, job_env: dict[str, str]):
    """Run a local job with the test environment; returns a LocalJobResult."""

    def run(hyperparameters: dict[str, str], hosts: int = 1, env: dict[str, str] | None = None,
            **kwargs: object) -> LocalJobResult:
        return run_local_job(hyperparameters, hosts=hosts, workdir=tmp_path, env={**job_env, **(env or {})},
                             timeout=300, **kwargs)

    return run


IMAGE_BUILD = pytest.StashKey["image_env.BuildHandle | str"]()
"""The image environment's background build, or why there is none (no Python 3.10)."""


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start building the image environment now if its tests will run: the suite goes on meanwhile."""
    items = [item for item in session.items if item.path.name == "test_image_env.py"]
    if not items:
        return
    python, where = image_env.find_python()
    if python is None:
        session.config.stash[IMAGE_BUILD] = where
        if os.environ.get(image_env.REQUIRED_ENV) != "1":  # one folded "SKIPPED [n]" line; CI fails instead
            for item in items:
                item.add_marker(pytest.mark.skip(reason=f"{where}; skipped here, required in CI"))
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # each xdist worker starts one; the builds take turns
    log = Path(session.config.rootpath, image_env.VENV.name + (f"-{worker}" if worker not in ("", "gw0") else "")
               + ".log")
    session.config.stash[IMAGE_BUILD] = image_env.start_build(python, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    build = session.config.stash.get(IMAGE_BUILD, None)
    if isinstance(build, image_env.BuildHandle):
        build.stop()  # an interrupted session leaves no pip behind
