"""container/build_push.sh against stand-in `docker` and `aws` executables that record their calls."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import tomllib

from launch.settings import settings_from_dict

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "container" / "build_push.sh"
ACCOUNT = "123456789012"
REGISTRY = f"{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com"
BASE_REGISTRY = "246618743249.dkr.ecr.us-west-2.amazonaws.com"

# Each stand-in appends its argv (and, for `docker login`, what it read on stdin) to $STUB_LOG, and
# fails when its command line starts with $STUB_FAIL.
STUB = r"""#!/bin/sh
line="$(basename "$0") $*"
case "$*" in *--password-stdin*) IFS= read -r secret || true; line="$line <stdin:$secret>" ;; esac
printf '%s\n' "$line" >> "$STUB_LOG"
if [ -n "${STUB_FAIL:-}" ]; then
  case "$line" in "$STUB_FAIL"*) echo "stand-in failure: $line" >&2; exit 1 ;; esac
fi
case "$line" in
  "aws configure get region") [ -n "${STUB_REGION:-}" ] && echo "$STUB_REGION" || exit 1 ;;
  "aws sts get-caller-identity"*) echo 123456789012 ;;
  "aws ecr get-login-password"*) echo stand-in-token ;;
  "aws ecr describe-repositories"*)
    [ "${STUB_REPO_EXISTS:-0}" = 1 ] && echo '{}' && exit 0
    echo "An error occurred (RepositoryNotFoundException) when calling the DescribeRepositories operation" >&2
    exit 254 ;;
esac
exit 0
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A committed git tree standing in for the repository (the stand-in docker builds nothing)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "Dockerfile").write_text("FROM scratch\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "Dockerfile"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    return repo


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """PATH for the script: the stand-ins plus links to the few real tools it needs, nothing else
    (so a real docker or aws elsewhere on this machine is never reached)."""
    path = tmp_path / "bin"
    path.mkdir()
    for tool in ("git", "dirname", "basename"):
        (path / tool).symlink_to(shutil.which(tool))
    for tool in ("docker", "aws"):
        (path / tool).write_text(STUB)
        (path / tool).chmod(0o755)
    return path


def run(checkout: Path, bin_dir: Path, **env: str) -> subprocess.CompletedProcess:
    log = bin_dir.parent / "calls.log"
    log.touch()
    environment = {
        "PATH": str(bin_dir),
        "HOME": str(bin_dir.parent),
        "REPO_DIR": str(checkout),
        "STUB_LOG": str(log),
        "STUB_REGION": "us-west-2",
        **env,
    }
    result = subprocess.run(["/bin/bash", str(SCRIPT)], env=environment, capture_output=True, text=True)
    result.calls = log.read_text().splitlines()
    return result


def revision(checkout: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip()


def expected_calls(tag: str) -> list[str]:
    return [
        "docker buildx version",
        "docker info --format {{.ServerVersion}}",
        "aws configure get region",
        "aws sts get-caller-identity --query Account --output text",
        "aws ecr get-login-password --region us-west-2",
        f"docker login --username AWS --password-stdin {BASE_REGISTRY} <stdin:stand-in-token>",
        "aws ecr get-login-password --region us-west-2",
        f"docker login --username AWS --password-stdin {REGISTRY} <stdin:stand-in-token>",
        "aws ecr describe-repositories --region us-west-2 --repository-names snowflake-sagemaker-xgboost",
        "aws ecr create-repository --region us-west-2 --repository-name snowflake-sagemaker-xgboost "
        "--image-scanning-configuration scanOnPush=true",
        "docker buildx build --platform linux/amd64 --provenance=false --sbom=false --load "
        f"--build-arg REGION=us-west-2 --build-arg BASE_ACCOUNT=246618743249 --build-arg GIT_REVISION={tag} "
        f"--tag snowflake-sagemaker-xgboost:{tag} --file {{repo}}/Dockerfile {{repo}}",
        f"docker tag snowflake-sagemaker-xgboost:{tag} {REGISTRY}/snowflake-sagemaker-xgboost:{tag}",
        f"docker push {REGISTRY}/snowflake-sagemaker-xgboost:{tag}",
    ]


def test_logs_in_creates_the_repository_builds_tags_pushes_and_prints_the_uri(checkout, bin_dir):
    result = run(checkout, bin_dir)
    assert result.returncode == 0, result.stderr
    tag = revision(checkout)
    assert result.calls == [c.replace("{repo}", str(checkout)) for c in expected_calls(tag)]
    assert result.stdout == f'image = "{REGISTRY}/snowflake-sagemaker-xgboost:{tag}"\n'


def test_the_printed_line_is_the_launcher_settings_key(checkout, bin_dir):
    """The line build-push prints, pasted over the example's, is what the launcher loads as the image."""
    result = run(checkout, bin_dir)
    example = (REPO / "launch" / "settings.example.toml").read_text()
    pasted = re.sub(r"(?m)^image = .*$", lambda _: result.stdout.strip(), example)
    assert pasted != example
    settings = settings_from_dict(tomllib.loads(pasted))
    assert settings.image == f"{REGISTRY}/snowflake-sagemaker-xgboost:{revision(checkout)}"


def test_the_example_settings_name_the_repository_build_push_and_the_iam_readme_use():
    example = (REPO / "launch" / "settings.example.toml").read_text()
    (image,) = re.findall(r'(?m)^image = "[^"]*/([^/:"]+):[^"]*"', example)
    script = (REPO / "container" / "build_push.sh").read_text()
    (default,) = re.findall(r'REPOSITORY="\$\{REPOSITORY:-([^}]+)\}"', script)
    readme = (REPO / "iam" / "README.md").read_text()
    (in_readme,) = re.findall(r"\| `\$\{Repository\}` \| [^|]+\| `([^`]+)` \|", readme)
    assert image == default == in_readme == "snowflake-sagemaker-xgboost"


def test_an_existing_repository_is_not_created_again(checkout, bin_dir):
    result = run(checkout, bin_dir, STUB_REPO_EXISTS="1")
    assert result.returncode == 0, result.stderr
    assert not [c for c in result.calls if "create-repository" in c]


def test_variables_override_the_aws_cli_configuration(checkout, bin_dir):
    result = run(checkout, bin_dir, REGION="eu-west-1", ACCOUNT="210987654321", REPOSITORY="xgb")
    assert result.returncode == 0, result.stderr
    assert not [c for c in result.calls if c.startswith(("aws configure", "aws sts"))]
    assert "docker login --username AWS --password-stdin 141502667606.dkr.ecr.eu-west-1.amazonaws.com" in (
        " ".join(result.calls)
    )
    assert result.stdout.startswith('image = "210987654321.dkr.ecr.eu-west-1.amazonaws.com/xgb:')


@pytest.mark.parametrize(
    ("failing", "message"),
    [
        ("docker buildx version", "docker buildx not found"),
        ("docker info", "docker daemon not reachable"),
        ("aws sts get-caller-identity", "AWS account unknown"),
        ("aws ecr get-login-password", f"aws ecr get-login-password failed for {BASE_REGISTRY}"),
        (f"docker login --username AWS --password-stdin {REGISTRY}", f"docker login to {REGISTRY} failed"),
        ("aws ecr describe-repositories", "ecr describe-repositories failed"),
        ("aws ecr create-repository", "ecr create-repository snowflake-sagemaker-xgboost failed"),
        ("docker buildx build", "docker buildx build failed"),
        ("docker tag", "docker tag"),
        ("docker push", "docker push"),
    ],
)
def test_a_failing_step_stops_the_script_with_a_message_naming_it(checkout, bin_dir, failing, message):
    result = run(checkout, bin_dir, STUB_FAIL=failing)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("build-push: ") and message in last, result.stderr
    assert result.stdout == ""
    failed_at = max(i for i, call in enumerate(result.calls) if call.startswith(failing))
    assert failed_at == len(result.calls) - 1, f"calls after the failure: {result.calls[failed_at + 1 :]}"


@pytest.mark.parametrize("tool", ["docker", "aws"])
def test_a_missing_tool_is_named(checkout, bin_dir, tool):
    (bin_dir / tool).unlink()
    result = run(checkout, bin_dir)
    assert result.returncode != 0
    assert f"build-push: {tool} not found" in result.stderr
    assert result.calls == []


def test_a_dirty_tree_is_refused_unless_allowed(checkout, bin_dir):
    (checkout / "uncommitted.py").write_text("x = 1\n")
    refused = run(checkout, bin_dir)
    assert refused.returncode != 0
    assert "build-push: git tree has uncommitted changes" in refused.stderr
    assert not [c for c in refused.calls if c.startswith(("aws", "docker login", "docker buildx build"))]

    allowed = run(checkout, bin_dir, ALLOW_DIRTY="1")
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.rstrip().endswith(f':{revision(checkout)}-dirty"')


def test_an_unknown_region_is_explained(checkout, bin_dir):
    result = run(checkout, bin_dir, STUB_REGION="")
    assert result.returncode != 0
    assert "build-push: AWS region unknown: set REGION=" in result.stderr
    result = run(checkout, bin_dir, REGION="xx-nowhere-1")
    assert "build-push: no SageMaker XGBoost image known for region xx-nowhere-1" in result.stderr


def test_base_image_accounts_match_the_sagemaker_sdk():
    # Located without importing the SDK (slow); the dev environment pins it (requirements-dev.txt).
    sdk_dir = Path(importlib.util.find_spec("sagemaker").submodule_search_locations[0])
    sdk_config = sdk_dir / "core" / "image_uri_config" / "xgboost.json"
    sdk = json.loads(sdk_config.read_text())["training"]["versions"]["3.0-5"]["registries"]
    ours = dict(re.findall(r"([a-z0-9-]+)\) echo (\d{12})", SCRIPT.read_text()))
    commercial = {r: a for r, a in sdk.items() if not r.startswith(("cn-", "us-gov-", "us-iso"))}
    assert ours == commercial


def test_script_is_executable_and_strict():
    assert os.access(SCRIPT, os.X_OK)
    assert "set -euo pipefail" in SCRIPT.read_text()
