"""The image contract, proven from the Dockerfile without a Docker engine."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from container.install_runtime import (
    BASE_REQUIREMENTS,
    RUNTIME_REQUIREMENTS,
    constraints,
    pip_command,
    read_pins,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared helper below
from dockerfile_contract import (  # noqa: E402
    DOCKERFILE,
    REPO,
    copy_instructions,
    dockerignored,
    entrypoint_argv,
    image_env,
    instruction_args,
    parse_dockerfile,
    workdir,
)

HADOLINT = Path(sys.executable).parent / "hadolint"
# Where a script-mode runner looks for code to pip-install at job start (REFERENCE.md section 1).
RUNNER_DIRS = ("/opt/ml/code", workdir())
INSTALLABLE = ("requirements.txt", "setup.py", "setup.cfg", "pyproject.toml")


def test_hadolint_passes():
    result = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_the_build_argument_defaulting_to_xgboost_3_0_5():
    instructions = parse_dockerfile()
    froms = [args for kw, args in instructions if kw == "FROM"]
    assert froms == ["${BASE_IMAGE}"]
    args_before_from = dict(
        args.split("=", 1)
        for kw, args in instructions[: instructions.index(("FROM", froms[0]))]
        if kw == "ARG"
    )
    default = args_before_from["BASE_IMAGE"]
    for name, value in args_before_from.items():
        default = default.replace("${" + name + "}", value)
    assert default == "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:3.0-5"


def test_entrypoint_runs_a_module_that_the_copies_put_in_the_image():
    argv = entrypoint_argv()
    assert argv[:2] == ["python3", "-m"], argv
    module = argv[2]
    assert image_env()["PYTHONPATH"] == workdir() == "/opt/program"
    image_dirs = {dest.rstrip("/"): sources for sources, dest in copy_instructions()}
    package_dir = f"{workdir()}/{module.replace('.', '/')}"
    assert image_dirs.get(package_dir) == [f"{module.replace('.', '/')}/"], image_dirs
    assert "training" in {Path(d).name for d in image_dirs}, "the entry program imports training/"


def test_entry_program_exists():
    # `python3 -m container` runs container/__main__.py, which arrives with the copy of container/.
    main = REPO / entrypoint_argv()[2].replace(".", "/") / "__main__.py"
    if not main.exists():
        pytest.skip(f"{main.relative_to(REPO)} is not written yet")
    assert not dockerignored(str(main.relative_to(REPO)))


def test_every_copy_source_exists_and_is_in_the_build_context():
    for sources, _ in copy_instructions():
        for source in sources:
            assert (REPO / source).exists(), f"COPY source {source} is missing from the repo"
            assert not dockerignored(source.rstrip("/")), f"COPY source {source} is excluded by .dockerignore"


def test_requirements_are_installed_at_build_time_by_the_shared_step_without_cache():
    """The one install RUN runs container/install_runtime.py (the step the image-environment check
    runs too) on the copied files, without pip's cache; no pip call of its own."""
    runs = instruction_args(DOCKERFILE, "RUN")
    assert not [run for run in runs if "pip install" in run], "install through container/install_runtime.py"
    installs = [run for run in runs if "install_runtime.py" in run]
    assert len(installs) == 1, runs
    words = shlex.split(installs[0])
    script, directory = words[1], words[words.index("--no-cache-dir") + 1]
    assert words[0] == "python3" and Path(script).parent == Path(directory)
    copied = {Path(dest, Path(source).name): source for sources, dest in copy_instructions() for source in sources}
    assert copied[Path(script)] == "container/install_runtime.py"
    assert {copied.get(Path(directory, name)) for name in (RUNTIME_REQUIREMENTS, BASE_REQUIREMENTS)} == {
        RUNTIME_REQUIREMENTS, BASE_REQUIREMENTS}


def test_the_shared_step_installs_only_our_requirements_under_the_base_constraints(tmp_path):
    """requirements-base.txt is what the base image provides: a constraint, never installed."""
    words = pip_command(tmp_path / RUNTIME_REQUIREMENTS, tmp_path / "base-constraints.txt", ["--no-cache-dir"])
    assert words[:4] == [sys.executable, "-m", "pip", "install"] and "--no-cache-dir" in words
    assert [Path(words[i + 1]).name for i, w in enumerate(words) if w == "-r"] == [RUNTIME_REQUIREMENTS]
    assert [Path(words[i + 1]).name for i, w in enumerate(words) if w == "-c"] == ["base-constraints.txt"]


def test_no_installable_file_is_left_where_a_runner_would_install_it():
    runs = " ".join(instruction_args(DOCKERFILE, "RUN"))
    for sources, dest in copy_instructions():
        for source in sources:
            if Path(source).name in INSTALLABLE or source.startswith("requirements"):
                assert not dest.startswith(RUNNER_DIRS), f"{source} copied to {dest}"
                assert re.search(rf"rm -rf? {re.escape(dest.rstrip('/'))}\b", runs), f"{dest} is not removed"
            else:  # a copied folder must not carry one
                found = [p for name in INSTALLABLE for p in (REPO / source).rglob(name)]
                assert not found, f"{found} would be copied into the image"
    assert "SAGEMAKER_PROGRAM" not in image_env(), "the base image's script-mode runner stays off"


def test_base_constraints_hold_the_base_images_own_versions():
    """The constraints the shared step writes from the image's versions (here: the pins themselves)."""
    pins = read_pins(REPO / BASE_REQUIREMENTS)
    held = dict(line.split("==") for line in constraints(dict(pins)))
    assert set(held) == {"xgboost", "numpy", "pandas", "pyarrow", "scipy", "matplotlib", "boto3", "botocore", "pip",
                         "flask", "werkzeug", "gunicorn"}  # the endpoint's server (container/serve.py)
    assert held["xgboost"] == "3.0.5" and held["numpy"] == "2.1.0"


def test_no_credentials_in_the_image():
    text = DOCKERFILE.read_text()
    assert not re.search(r"(?i)(aws_secret|aws_access_key|password|token|private_key)\s*=", text)
    assert "--mount=type=secret" not in text


def test_revision_label_comes_from_the_build_argument():
    labels = " ".join(instruction_args(DOCKERFILE, "LABEL"))
    assert 'org.opencontainers.image.revision="${GIT_REVISION}"' in labels
    assert "GIT_REVISION" in " ".join(instruction_args(DOCKERFILE, "ARG"))


def test_dockerignore_keeps_secrets_tests_and_environments_out():
    for path in (
        ".git/config",
        ".venv/bin/python",
        ".venv-image/bin/python",
        "tests/unit/test_dockerfile.py",
        "launch/settings.toml",
        "training/settings.toml",
        "training/key.pem",
        ".env",
        "work/hosts/a",
        "bench/x.py",
        "container/build_push.sh",
        "training/__pycache__/x.pyc",
    ):
        assert dockerignored(path), f"{path} would be sent to the builder"
    for path in ("requirements.txt", "training/hyperparameters/table.py", "container/__main__.py"):
        assert not dockerignored(path), path
