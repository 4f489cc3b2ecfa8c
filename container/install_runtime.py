"""Install the container's runtime on top of the base image: the Dockerfile's one install step.

    python3 install_runtime.py [--no-cache-dir] [--report FILE] DIR

``DIR`` holds ``requirements.txt`` (what we add) and ``requirements-base.txt`` (what the SageMaker
XGBoost image ships). In order:

1. compare the running interpreter's packages with ``requirements-base.txt``: a held package at
   another version fails (our tests ran the pinned one); any other difference is a warning line;
2. hold the held packages at the versions installed here with a constraints file, so that pip
   fails rather than replace the image's builds to satisfy one of our dependencies;
3. ``python -m pip install -r requirements.txt -c <constraints>`` with this interpreter;
4. list what the install moved (``moved: protobuf 3.20.3 -> ...``) and import the runtime.

The Dockerfile runs it in the image; the image-environment check (tests/integration/
test_image_env.py) runs it in a Python 3.10 virtual environment holding requirements-base.txt, so
both install the same way. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

BASE_REQUIREMENTS = "requirements-base.txt"
"""The image's packages, pinned at its versions (``name==version`` per line)."""
RUNTIME_REQUIREMENTS = "requirements.txt"
"""What we install on top of the image."""
MAY_MOVE = frozenset({"requests", "urllib3", "certifi", "cryptography", "python-dateutil", "pyyaml", "protobuf"})
"""Base packages our install may upgrade (only when a dependency needs it; pip keeps a satisfied one).

Their versions in the image serve its own runner and model server (sagemaker-containers,
multi-model-server), which our ENTRYPOINT never starts. Every other base package is held:
xgboost, numpy, pandas, pyarrow, scipy and matplotlib are the image's numeric builds, boto3 and
botocore its AWS SDK, Flask, Werkzeug and gunicorn the endpoint's server (``serve``), pip its
installer. docs/image.md lists what moves and why that is safe."""
RUNTIME_IMPORTS = ("xgboost", "snowflake.connector", "mlflow", "sagemaker_mlflow", "flask", "gunicorn")
"""Modules the entry program needs; importing them proves the install is complete."""


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): ``PyYAML`` and ``pyyaml`` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """``name==version`` lines (comments and blank lines ignored) as {canonical name: version}."""
    pins = {}
    for line in path.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if not requirement:
            continue
        name, sep, version = requirement.partition("==")
        if not sep or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name.strip()):
            raise ValueError(f"{path.name}: expected name==version, found {line!r}")
        pins[canonical(name.strip())] = version.strip()
    return pins


def installed_versions(names: list[str]) -> dict[str, str | None]:
    """The version of each distribution in this interpreter (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def compare_base(pins: dict[str, str], installed: dict[str, str | None]) -> tuple[list[str], list[str]]:
    """(errors, warnings): a held package away from its pin is an error; another one a warning."""
    errors, warnings = [], []
    for name, pinned in pins.items():
        if installed[name] != pinned:
            line = f"{name}: the image has {installed[name]}, {BASE_REQUIREMENTS} pins {pinned}"
            (warnings if name in MAY_MOVE else errors).append(line)
    return errors, warnings


def constraints(installed: dict[str, str | None]) -> list[str]:
    """Constraint lines holding every held package at the version installed here."""
    return [f"{name}=={version}" for name, version in installed.items() if version and name not in MAY_MOVE]


def pip_command(requirements: Path, constraints_file: Path, pip_options: list[str]) -> list[str]:
    """The one pip call: our requirements, under the constraints, with this interpreter."""
    return [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *pip_options,
            "-r", str(requirements), "-c", str(constraints_file)]


def moved(before: dict[str, str | None], after: dict[str, str | None]) -> dict[str, tuple[str | None, str | None]]:
    """The base packages whose version the install changed: {name: (before, after)}."""
    return {name: (before[name], after[name]) for name in before if before[name] != after[name]}


def _import_check() -> None:
    """Import the runtime in a fresh interpreter (this one cached the metadata of before)."""
    code = (f"import {', '.join(RUNTIME_IMPORTS)}, sys\n"
            "print('install_runtime: imports ok: python', sys.version.split()[0], 'xgboost', xgboost.__version__)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def install(directory: Path, pip_options: list[str], report: Path | None = None) -> int:
    """Run the four steps; return the exit code (1 when the image differs from a held pin)."""
    pins = read_pins(directory / BASE_REQUIREMENTS)
    before = installed_versions(list(pins))
    errors, warnings = compare_base(pins, before)
    for line in warnings:
        print(f"install_runtime: warning: {line}")
    if errors:
        print("install_runtime: the base image differs from the versions the tests ran:\n  " + "\n  ".join(errors)
              + f"\n  refresh {BASE_REQUIREMENTS} (docs/image.md, 'Refresh the pins') or pin BASE_IMAGE by digest",
              file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        constraints_file = Path(tmp) / "base-constraints.txt"
        constraints_file.write_text("\n".join(constraints(before)) + "\n")
        print("install_runtime: holding " + " ".join(constraints(before)))
        subprocess.run(pip_command(directory / RUNTIME_REQUIREMENTS, constraints_file, pip_options), check=True)
    after = installed_versions(list(pins))
    changes = moved(before, after)
    for name, (old, new) in sorted(changes.items()):
        print(f"install_runtime: moved: {name} {old} -> {new}")
    _import_check()
    if report:
        report.write_text(json.dumps({"python": sys.version.split()[0], "before": before, "after": after,
                                      "moved": changes, "held": constraints(before)}, indent=1))
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help=f"holds {RUNTIME_REQUIREMENTS} and {BASE_REQUIREMENTS}")
    parser.add_argument("--no-cache-dir", action="store_true", help="passed to pip (the image keeps no cache)")
    parser.add_argument("--report", type=Path, help="write the versions before and after as JSON")
    args = parser.parse_args(argv)
    return install(args.directory, ["--no-cache-dir"] if args.no_cache_dir else [], args.report)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
