"""Read the Dockerfile and .dockerignore the way Docker does, for tests that prove the image contract
without a Docker engine.

`entrypoint_argv` and `image_env` let a test run the exact command line SageMaker will start
(``<entrypoint> train``) from the source tree, which stands in for the image's WORKDIR.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def parse_dockerfile(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """Return the instructions as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in Path(path).read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # comments may sit inside a continued instruction; Docker drops them too
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = (pending + stripped).strip()
        pending = ""
        if text:
            keyword, _, args = text.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    return instructions


def instruction_args(path: Path, keyword: str) -> list[str]:
    """The arguments of every `keyword` instruction, in order."""
    return [args for kw, args in parse_dockerfile(path) if kw == keyword]


def _exec_form(args: str) -> list[str]:
    """Parse exec (JSON) form, falling back to shell words for shell form."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return shlex.split(args)
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ValueError(f"not an exec-form list of strings: {args}")
    return value


def entrypoint_argv(path: Path = DOCKERFILE) -> list[str]:
    """The last ENTRYPOINT as an argv list (SageMaker appends `train`)."""
    entrypoints = instruction_args(path, "ENTRYPOINT")
    if not entrypoints:
        raise ValueError(f"{path} has no ENTRYPOINT")
    return _exec_form(entrypoints[-1])


def copy_instructions(path: Path = DOCKERFILE) -> list[tuple[list[str], str]]:
    """Every COPY as (sources, destination); --flags are dropped."""
    copies = []
    for args in instruction_args(path, "COPY"):
        words = [w for w in _exec_form(args) if not w.startswith("--")]
        copies.append((words[:-1], words[-1]))
    return copies


def image_env(path: Path = DOCKERFILE) -> dict[str, str]:
    """ENV values set by the Dockerfile (key=value form), e.g. {"PYTHONPATH": "/opt/program"}."""
    env: dict[str, str] = {}
    for args in instruction_args(path, "ENV"):
        for word in shlex.split(args):
            key, sep, value = word.partition("=")
            if not sep:
                raise ValueError(f"use ENV key=value, not the legacy form: ENV {args}")
            env[key] = value
    return env


def workdir(path: Path = DOCKERFILE) -> str:
    """The last WORKDIR: the entry program's working directory in the image."""
    return instruction_args(path, "WORKDIR")[-1]


def dockerignored(relpath: str, ignore_file: Path = DOCKERIGNORE) -> bool:
    """Whether .dockerignore keeps `relpath` (relative to the context) out of the build context.

    Docker's rules, simplified: patterns in order, the last match wins, `!` re-includes, and a path
    is excluded when it or one of its parent directories matches.
    """
    patterns = [
        p.strip() for p in ignore_file.read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    parts = Path(relpath).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = re.compile(_glob_regex(pattern))
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not negate
    return ignored


def _glob_regex(pattern: str) -> str:
    """A .dockerignore glob as a regex: `**` spans directories, `*` and `?` stay within one."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        else:
            out.append({"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i])))
            i += 1
    return "".join(out)
