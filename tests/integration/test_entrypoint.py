"""The image's exact ENTRYPOINT, plus SageMaker's ``train`` argument, run as SageMaker runs it.

Two hosts, each with its own base directory standing in for ``/opt/ml``, against the local
Snowflake and Secrets Manager: the job trains and the leader writes the model, and the launcher's
metric regexes read its log; with a bad hyperparameter our one-line message lands in
``output/failure`` with exit code 1.
"""

import os
import re
import sys
from pathlib import Path

import pytest

from launch import jobs
from launch.local.hosts import LocalJobResult, run_local_job
from tests.dockerfile_contract import entrypoint_argv
from tests.helpers import synth_hps
from training import contract

pytestmark = pytest.mark.slow

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


@pytest.fixture(scope="module")
def image_env(job_env):
    """The job environment with this venv's interpreter first on PATH, as the image's python3."""
    bin_dir = str(Path(sys.executable).parent)
    return {**job_env, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}


@pytest.fixture(scope="module")
def trained(image_env, tmp_path_factory) -> LocalJobResult:
    """A 2-host job through the ENTRYPOINT, reporting two metrics."""
    command = [*entrypoint_argv(DOCKERFILE), "train"]
    assert command[:3] == ["python3", "-m", "container"]
    return run_local_job(synth_hps(num_round=8, eval_metric="rmse,mae"), hosts=2,
                         workdir=tmp_path_factory.mktemp("entrypoint"), env=image_env, command=command, timeout=300)


def test_entrypoint_trains_two_hosts(trained):
    result = trained
    assert result.exit_codes == [0, 0], result.failure
    assert result.model_path is not None and result.model_path.stat().st_size > 0
    assert result.rounds == 8
    assert not any(contract.failure_file(d).exists() for d in result.host_dirs)


def test_entrypoint_bad_hyperparameter_writes_the_failure_file(run_job, image_env):
    command = [*entrypoint_argv(DOCKERFILE), "train"]
    result = run_job(synth_hps(max_depth="deep"), hosts=2, env=image_env, command=command)
    assert result.exit_codes == [1, 1]
    for host_dir in result.host_dirs:
        failure = contract.failure_file(host_dir).read_text()
        assert failure.strip() == ("hyperparameter 'max_depth' must be an integer in [0, inf], got 'deep': "
                                   "fix its value")
        assert failure.count("\n") == 1  # one line
    assert result.model_path is None


def test_metric_regexes_read_a_real_runs_log(trained: LocalJobResult) -> None:
    result = trained
    assert result.exit_code == 0, result.failure
    log = result.logs[0].read_text()
    for definition in jobs.metric_definitions(["rmse", "mae"]):
        values = [float(v) for v in re.findall(definition["Regex"], log)]
        assert len(values) == result.rounds == 8, definition  # one per round, none from the final line
        printed = definition["Name"].replace(":", "-")
        assert values[-1] == pytest.approx(result.final_metrics[printed]), definition
