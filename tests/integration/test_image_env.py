"""The container as the image runs it: Python 3.10, the base image's exact packages, our runtime
installed by the Dockerfile's own step (container/install_runtime.py). docs/image.md, "The image
environment".

The environment is built in the background from the start of the session (conftest.py); these
tests wait for it. Without Python 3.10 they are skipped with one line, unless IMAGE_ENV_REQUIRED=1
(CI), where that is a failure.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from pathlib import Path

import mlflow
import pytest

from container.install_runtime import MAY_MOVE, canonical, read_pins
from tests.helpers import synth_hps
from tests.integration import image_env
from tests.integration.conftest import IMAGE_BUILD
from training import contract

pytestmark = pytest.mark.slow
REPO = image_env.REPO


@pytest.fixture(scope="module")
def python310(request: pytest.FixtureRequest) -> Path:
    """The image environment's interpreter, once the background build is done."""
    build = request.config.stash.get(IMAGE_BUILD, None)
    if build is None:  # collected some other way: build here
        python, build = image_env.find_python()
        if python is not None:
            return image_env.build(python)
    if isinstance(build, str):
        if os.environ.get(image_env.REQUIRED_ENV) == "1":
            pytest.fail(f"{build} ({image_env.REQUIRED_ENV}=1)")
        pytest.skip(f"{build}; skipped here, required in CI")
    try:
        return build.wait()
    except RuntimeError as err:
        pytest.fail(str(err))


def _run(python: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the 3.10 interpreter from the repo root, with the program on the path as in the image."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([str(python), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _documented_moves() -> dict[str, str]:
    """docs/image.md's table of what the install upgrades: {package: version in the image}."""
    text = (REPO / "docs" / "image.md").read_text()
    table = text.split("### What the install upgrades", 1)[1].split("Why that is safe", 1)[0]
    return {canonical(name): version for name, version in re.findall(r"^\| (\S+) \| ([0-9][^ |]*) \|", table, re.M)}


def test_the_install_holds_the_base_image_and_moves_only_what_the_docs_list(python310):
    report = json.loads((python310.parents[1] / image_env.REPORT).read_text())
    pins = read_pins(REPO / "requirements-base.txt")
    assert report["python"].startswith("3.10.")
    assert report["before"] == pins, "the environment starts as the image"
    for name in set(pins) - MAY_MOVE:
        assert report["after"][name] == pins[name], f"the install moved {name}, which it must hold"
    moved = {name: versions[0] for name, versions in report["moved"].items()}
    lines = "\n".join(f"  {name} {old} -> {new}" for name, (old, new) in sorted(report["moved"].items()))
    assert moved == _documented_moves(), f"update docs/image.md's table: the install now moves\n{lines}"


def test_every_module_of_the_container_program_imports_under_python_310(python310):
    modules = sorted(".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                     for package in ("training", "container") for p in (REPO / package).rglob("*.py")
                     if p.name != "__main__.py")
    code = f"import importlib, sys\nassert sys.version_info[:2] == (3, 10)\nfor m in {modules!r}: importlib.import_module(m)"
    result = _run(python310, "-c", code)
    assert result.returncode == 0, result.stderr[-4000:]


def _container_unit_tests() -> list[str]:
    """The unit tests of the code in the image: those that import training or container, and neither
    launch (the laptop's) nor the Dockerfile's reader (those tests run hadolint, a laptop tool)."""
    chosen = []
    for path in sorted((REPO / "tests" / "unit").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
        roots |= {node.module.split(".")[0] for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
        if roots & {"training", "container"} and not roots & {"launch", "dockerfile_contract"}:
            chosen.append(str(path.relative_to(REPO)))
    return chosen


def test_the_container_unit_tests_pass_under_python_310(python310):
    files = _container_unit_tests()
    assert "tests/unit/test_container_env.py" in files and "tests/unit/test_install_runtime.py" in files
    assert "tests/unit/test_cli.py" not in files and "tests/unit/test_dockerfile.py" not in files
    result = _run(python310, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


@pytest.fixture(scope="module")
def tracking(shared_tracking):
    return shared_tracking


def test_a_two_host_job_through_the_entry_program_under_python_310(python310, run_job, tracking):
    """The image's command (`python -m container train`) on Python 3.10 with mlflow-skinny, tracking
    over HTTP (the image has no SQLAlchemy: a sqlite: URI is not available inside it)."""
    env = {contract.TRACKING_URI_ENV: tracking.uri, contract.EXPERIMENT_ENV: "image-env"}
    result = run_job(synth_hps(num_round=8), hosts=2, env=env, command=[str(python310), "-m", "container", "train"])
    assert result.exit_code == 0, result.failure or result.logs[0].read_text()[-4000:]
    assert result.model_path is not None and result.rounds == 8
    client = mlflow.MlflowClient(tracking_uri=tracking.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("image-env").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["version.xgboost"] == "3.0.5"
    assert run.data.metrics["validation-rmse"] == pytest.approx(result.final_metrics["validation-rmse"], rel=1e-5)
