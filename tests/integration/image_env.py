"""The image environment without Docker: Python 3.10, the base image's packages, our runtime on top.

``build`` makes ``.venv-image/`` the way the image is made: a Python 3.10 virtual environment,
``requirements-base.txt`` installed first (the base image's packages, by uv from its cache), then
``container/install_runtime.py`` (the Dockerfile's own install step, pip with the constraints),
then pytest for the container's unit tests. A stamp of the inputs skips a build that is current.

The test session starts the build in the background as soon as it has collected
``test_image_env.py`` (``start_build``, from tests/integration/conftest.py), so the suite runs on
while pip works; the tests wait for it (``BuildHandle.wait``). Run alone::

    .venv/bin/python -m tests.integration.image_env   # builds .venv-image/ and prints each step
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv-image"
"""Where the image environment lives (git- and docker-ignored); rebuilt when its inputs change."""
REPORT = "install-report.json"
"""install_runtime.py's --report inside the environment: the base versions before and after."""
PYTHON_VERSION = (3, 10)
"""The SageMaker XGBoost 3.0-5 image's Python (its base Dockerfile's ARG PYTHON_VERSION)."""
PYTHON_ENV = "IMAGE_PYTHON"
"""A Python 3.10 interpreter to use, when it is not on PATH, in pyenv or known to uv."""
REQUIRED_ENV = "IMAGE_ENV_REQUIRED"
"""``1`` (set by .ci/run): no Python 3.10 is a failure, not a skip."""
INPUTS = ("requirements-base.txt", "requirements.txt", "container/install_runtime.py", "requirements-dev.txt",
          "tests/integration/image_env.py")
"""The files a build depends on (the stamp hashes them)."""
BUILD_TIMEOUT_S = 900.0


def _version_of(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.stdout.split()
    return (int(parts[0]), int(parts[1])) if out.returncode == 0 and len(parts) == 2 else None


def _uv() -> str | None:
    beside = Path(sys.executable).with_name("uv")  # the Makefile installs uv into .venv
    return str(beside) if beside.exists() else shutil.which("uv")


def _uv_python() -> str:
    uv = _uv()
    if uv is None:
        return ""
    found = subprocess.run([uv, "python", "find", "--no-project", "3.10"], capture_output=True, text=True, timeout=60)
    return found.stdout.strip() if found.returncode == 0 else ""


def _candidates(pyenv_root: str) -> Iterator[tuple[str, str]]:
    """(interpreter, where from), in order of preference; uv is asked only if the others fail."""
    yield os.environ.get(PYTHON_ENV, ""), f"${PYTHON_ENV}"
    yield shutil.which("python3.10") or "", "python3.10 on PATH"
    for path in sorted(glob.glob(f"{pyenv_root}/versions/3.10.*/bin/python3.10")):
        yield path, "pyenv"
    yield _uv_python(), "uv python find"


def find_python() -> tuple[str | None, str]:
    """(interpreter, where it was found) or (None, why not). A pyenv shim on PATH that has no 3.10
    selected fails when run, so every candidate is run and must answer 3.10."""
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    for python, where in _candidates(pyenv_root):
        if python and _version_of(python) == PYTHON_VERSION:
            return python, where
    return None, (f"no Python 3.10 interpreter (looked at ${PYTHON_ENV}, python3.10 on PATH, "
                  f"{pyenv_root}/versions/3.10.*, uv python find): the image-environment check needs one")


def _stamp(python: str) -> str:
    digest = hashlib.sha256(python.encode())
    for name in INPUTS:
        digest.update((REPO / name).read_bytes())
    return digest.hexdigest()


def _test_tools() -> list[str]:
    """pytest and its plugins at requirements-dev.txt's versions (one place pins them)."""
    lines = (REPO / "requirements-dev.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.startswith("pytest")]


def _step(title: str, command: list[str]) -> None:
    started = time.monotonic()
    print(f"image-env: {title}: {' '.join(command)}", flush=True)
    subprocess.run(command, check=True, cwd=REPO)
    print(f"image-env: {title}: done in {time.monotonic() - started:.0f} s", flush=True)


def build(python: str, venv: Path = VENV) -> Path:
    """Make ``venv`` the image environment (skipped when its stamp is current); return its python.

    One build at a time: a second (another pytest-xdist worker's) waits for the first, then finds
    its stamp current.
    """
    with open(venv.with_name(venv.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(python, venv)


def _build(python: str, venv: Path) -> Path:
    python_in_venv, stamp_file = venv / "bin" / "python", venv / ".image-env-stamp"
    stamp = _stamp(python)
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        print(f"image-env: {venv.name} is current", flush=True)
        return python_in_venv
    uv = _uv()
    if uv is None:
        raise RuntimeError("uv is needed to build the image environment (the Makefile installs it into .venv)")
    shutil.rmtree(venv, ignore_errors=True)
    _step("virtual environment", [uv, "venv", "-q", "--python", python, str(venv)])
    # --compile-bytecode: the image's packages come with their .pyc files (uv leaves them out by default);
    # without them every process of the checks compiles each module it imports.
    _step("the base image's packages", [uv, "pip", "install", "-q", "--compile-bytecode", "--python",
                                        str(python_in_venv), "-r", "requirements-base.txt"])
    _step("our runtime, by the Dockerfile's step", [str(python_in_venv), "container/install_runtime.py",
                                                    "--report", str(venv / REPORT), "."])
    _step("test tools", [uv, "pip", "install", "-q", "--compile-bytecode", "--python", str(python_in_venv),
                         *_test_tools()])
    stamp_file.write_text(stamp)
    return python_in_venv


@dataclass
class BuildHandle:
    """A build running in the background, its output going to ``log``."""

    process: subprocess.Popen[bytes]
    log: Path
    venv: Path

    def wait(self, timeout: float = BUILD_TIMEOUT_S) -> Path:
        """The environment's python once the build has succeeded; RuntimeError with the log otherwise."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            code = None
        if code != 0:
            raise RuntimeError(f"building the image environment failed ({code}):\n{self.log.read_text()[-4000:]}")
        return self.venv / "bin" / "python"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            self.process.wait(timeout=30)


def start_build(python: str, log: Path, venv: Path = VENV) -> BuildHandle:
    """Start ``build`` in a background process at low priority (the suite keeps the cores)."""
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            ["nice", "-n", "10", sys.executable, "-m", "tests.integration.image_env", python, str(venv)],
            cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    return BuildHandle(process, log, venv)


def main(argv: list[str]) -> int:
    python = argv[0] if argv else find_python()[0]
    if python is None:
        print(find_python()[1], file=sys.stderr)
        return 1
    build(python, Path(argv[1]) if len(argv) > 1 else VENV)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
