"""The image's pins (requirements-base.txt) and the install step the Dockerfile and the
image-environment check share (container/install_runtime.py), without installing anything."""

import re
from pathlib import Path

import pytest

from container.install_runtime import (
    BASE_REQUIREMENTS,
    MAY_MOVE,
    canonical,
    compare_base,
    constraints,
    install,
    moved,
    read_pins,
)

REPO = Path(__file__).resolve().parents[2]
IMAGE_PACKAGES = ("xgboost", "numpy", "pandas", "pyarrow", "boto3", "botocore", "protobuf", "requests", "urllib3",
                  "cryptography", "scipy", "matplotlib")
"""What the container imports or what our install could move (issue 15): each must be pinned."""
SOURCES = ("[base]", "[final]", "[req]")
"""The header's names for the files of aws/sagemaker-xgboost-container that the versions come from."""


def _base_tag() -> str:
    """The tag of the Dockerfile's default BASE_IMAGE, e.g. ``3.0-5``."""
    match = re.search(r"^ARG BASE_IMAGE=\S+/sagemaker-xgboost:(\S+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert match, "the Dockerfile's BASE_IMAGE default names a sagemaker-xgboost tag"
    return match.group(1)


def test_every_image_package_is_pinned_with_the_file_its_version_comes_from():
    pins = read_pins(REPO / BASE_REQUIREMENTS)
    assert set(IMAGE_PACKAGES) <= set(pins)
    for line in (REPO / BASE_REQUIREMENTS).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            comment = line.partition("#")[2]
            assert any(source in comment for source in SOURCES), f"say where {line.split()[0]} comes from"
    assert MAY_MOVE < set(pins), "a package allowed to move is one of the image's"


def test_the_pins_describe_the_dockerfiles_base_tag():
    """Offline, the tag is all there is to check: 3.0-5 is XGBoost 3.0.5 on Python 3.10. Moving the tag
    (or a patch of it by AWS) needs the refresh in docs/image.md; the image build fails until then."""
    tag = _base_tag()
    header = (REPO / BASE_REQUIREMENTS).read_text().splitlines()[0]
    assert f"SageMaker XGBoost {tag} image" in header and "Python 3.10" in header
    assert read_pins(REPO / BASE_REQUIREMENTS)["xgboost"] == tag.replace("-", ".")
    assert "Refresh the pins" in (REPO / "docs" / "image.md").read_text()


def test_the_laptop_environment_shares_the_images_numeric_stack():
    dev = {canonical(name): version for name, version in
           re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (REPO / "requirements-dev.txt").read_text(), re.M)}
    base = read_pins(REPO / BASE_REQUIREMENTS)
    for name in ("xgboost", "numpy", "pandas", "pyarrow", "scipy", "matplotlib"):
        assert dev.get(name) == base[name], f"requirements-dev.txt: {name}=={base[name]}, as the image"


def test_a_held_package_away_from_its_pin_fails_and_a_movable_one_warns():
    pins = {"xgboost": "3.0.5", "protobuf": "3.20.3"}
    errors, warnings = compare_base(pins, {"xgboost": "3.1.0", "protobuf": "4.0.0"})
    assert errors == [f"xgboost: the image has 3.1.0, {BASE_REQUIREMENTS} pins 3.0.5"]
    assert warnings == [f"protobuf: the image has 4.0.0, {BASE_REQUIREMENTS} pins 3.20.3"]
    assert compare_base(pins, dict(pins)) == ([], [])


def test_constraints_hold_what_is_installed_except_what_may_move():
    installed = {"numpy": "2.1.0", "protobuf": "3.20.3", "scipy": None}
    assert constraints(installed) == ["numpy==2.1.0"]
    assert moved(installed, {**installed, "protobuf": "7.0.0"}) == {"protobuf": ("3.20.3", "7.0.0")}


def test_pins_must_be_exact(tmp_path):
    path = tmp_path / BASE_REQUIREMENTS
    path.write_text("numpy==2.1.0  # [req]\nboto3>=1.34\n")
    with pytest.raises(ValueError, match="expected name==version, found 'boto3>=1.34'"):
        read_pins(path)
    path.write_text("PyYAML==6.0.1\n\n# a comment\n")
    assert read_pins(path) == {"pyyaml": "6.0.1"}


def test_an_image_that_differs_from_the_pins_fails_before_pip_runs(tmp_path, capsys):
    """What a moved base tag does to the build: one message naming the package and the fix."""
    (tmp_path / BASE_REQUIREMENTS).write_text("pytest==0.0.1  # [req]\n")
    (tmp_path / "requirements.txt").write_text("no-such-distribution-pip-would-fail-on==1\n")
    assert install(tmp_path, []) == 1  # had pip run, it would have raised
    err = capsys.readouterr().err
    assert f"pytest: the image has {pytest.__version__}, {BASE_REQUIREMENTS} pins 0.0.1" in err
    assert "Refresh the pins" in err
