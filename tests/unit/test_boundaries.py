"""The folders are runtime boundaries: the image carries training/ and container/ only.

training/ must import neither container/ nor launch/, and container/ must not import launch/
(neither is in the image), at module level or inside functions.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"training": {"container", "launch", "bench", "tests"}, "container": {"launch", "bench", "tests"}}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_stays_inside_its_boundary(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    for path in files:
        crossing = _imported_packages(path) & FORBIDDEN[package]
        assert not crossing, f"{path.relative_to(ROOT)} imports {sorted(crossing)}"
