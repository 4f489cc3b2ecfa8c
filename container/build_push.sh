#!/usr/bin/env bash
# Build the training image for linux/amd64, push it to this account's ECR and print the image URI
# for the launcher settings. Run by `make build-push`; docs/image.md walks through it.
#
# Variables (all optional):
#   REGION        AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, then `aws configure get region`)
#   ACCOUNT       account to push to (default: `aws sts get-caller-identity`)
#   REPOSITORY    ECR repository name (default: snowflake-sagemaker-xgboost), created if absent
#   BASE_ACCOUNT  registry account of the SageMaker XGBoost image (default: looked up by region)
#   ALLOW_DIRTY=1 build from a tree with uncommitted changes (the tag gets a -dirty suffix)
#   REPO_DIR      the checkout to build (default: the one holding this script)
#
# Written for bash 3.2 too (macOS): no associative arrays, no ${var,,}.
set -euo pipefail

REPO_DIR="${REPO_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
REPOSITORY="${REPOSITORY:-snowflake-sagemaker-xgboost}"

die() { echo "build-push: $*" >&2; exit 1; }
say() { echo "build-push: $*" >&2; }

# Registry accounts of sagemaker-xgboost:3.0-5 per region (the SageMaker SDK's image_uri_config/
# xgboost.json, which tests/unit/test_build_push.py compares with this list), from
# https://docs.aws.amazon.com/sagemaker/latest/dg-ecr-paths/sagemaker-algo-docker-registry-paths.html
base_account_for() {
    case "$1" in
        af-south-1) echo 510948584623 ;;     ap-east-1) echo 651117190479 ;;
        ap-northeast-1) echo 354813040037 ;; ap-northeast-2) echo 366743142698 ;;
        ap-northeast-3) echo 867004704886 ;; ap-south-1) echo 720646828776 ;;
        ap-south-2) echo 628508329040 ;;     ap-southeast-1) echo 121021644041 ;;
        ap-southeast-2) echo 783357654285 ;; ap-southeast-3) echo 951798379941 ;;
        ap-southeast-4) echo 106583098589 ;; ca-central-1) echo 341280168497 ;;
        ca-west-1) echo 190319476487 ;;      eu-central-1) echo 492215442770 ;;
        eu-central-2) echo 680994064768 ;;   eu-north-1) echo 662702820516 ;;
        eu-south-1) echo 978288397137 ;;     eu-south-2) echo 104374241257 ;;
        eu-west-1) echo 141502667606 ;;      eu-west-2) echo 764974769150 ;;
        eu-west-3) echo 659782779980 ;;      il-central-1) echo 898809789911 ;;
        me-central-1) echo 272398656194 ;;   me-south-1) echo 801668240914 ;;
        sa-east-1) echo 737474898029 ;;      us-east-1) echo 683313688378 ;;
        us-east-2) echo 257758044811 ;;      us-west-1) echo 746614075791 ;;
        us-west-2) echo 246618743249 ;;
        *) return 1 ;;
    esac
}

ecr_login() {  # $1 = registry host. The password goes through a pipe, never onto a command line.
    local password
    password="$(aws ecr get-login-password --region "$REGION")" \
        || die "aws ecr get-login-password failed for $1: check your AWS credentials"
    printf '%s\n' "$password" | docker login --username AWS --password-stdin "$1" >/dev/null \
        || die "docker login to $1 failed"
}

# 1. Tools.
command -v docker >/dev/null 2>&1 || die "docker not found: install Docker (https://docs.docker.com/get-docker/)"
command -v aws >/dev/null 2>&1 || die "aws not found: install the AWS CLI (https://aws.amazon.com/cli/)"
command -v git >/dev/null 2>&1 || die "git not found: the image is tagged with the git revision"
docker buildx version >/dev/null 2>&1 \
    || die "docker buildx not found: install the Docker buildx plugin (https://docs.docker.com/build/)"
docker info --format '{{.ServerVersion}}' >/dev/null 2>&1 \
    || die "docker daemon not reachable (docker info): start Docker"

# 2. Revision: the tag names the commit, so the tree must be that commit.
REVISION="$(git -C "$REPO_DIR" rev-parse --short=12 HEAD 2>/dev/null)" \
    || die "git revision unknown: $REPO_DIR is not a git checkout with a commit"
if [ -n "$(git -C "$REPO_DIR" status --porcelain)" ]; then
    [ "${ALLOW_DIRTY:-0}" = 1 ] || die "git tree has uncommitted changes: commit them, or set ALLOW_DIRTY=1"
    say "building a dirty tree (ALLOW_DIRTY=1): tag $REVISION-dirty"
    REVISION="$REVISION-dirty"
fi

# 3. Where to push.
REGION="${REGION:-${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region || true)}}}"
[ -n "$REGION" ] || die "AWS region unknown: set REGION=... or run 'aws configure set region ...'"
ACCOUNT="${ACCOUNT:-$(aws sts get-caller-identity --query Account --output text)}" \
    || die "AWS account unknown (aws sts get-caller-identity failed): check your AWS credentials or set ACCOUNT=..."
BASE_ACCOUNT="${BASE_ACCOUNT:-$(base_account_for "$REGION")}" \
    || die "no SageMaker XGBoost image known for region $REGION: set BASE_ACCOUNT=... (see docs/image.md)"
BASE_REGISTRY="$BASE_ACCOUNT.dkr.ecr.$REGION.amazonaws.com"
REGISTRY="$ACCOUNT.dkr.ecr.$REGION.amazonaws.com"
IMAGE_URI="$REGISTRY/$REPOSITORY:$REVISION"

# 4. Log in: the base image's registry (pull) and ours (push).
say "logging in to $BASE_REGISTRY and $REGISTRY"
ecr_login "$BASE_REGISTRY"
ecr_login "$REGISTRY"

# 5. The repository, scanned on push.
if ! out="$(aws ecr describe-repositories --region "$REGION" --repository-names "$REPOSITORY" 2>&1)"; then
    case "$out" in
        *RepositoryNotFoundException*) ;;
        *) die "ecr describe-repositories failed: $out" ;;
    esac
    say "creating ECR repository $REPOSITORY (scan on push)"
    aws ecr create-repository --region "$REGION" --repository-name "$REPOSITORY" \
        --image-scanning-configuration scanOnPush=true >/dev/null \
        || die "ecr create-repository $REPOSITORY failed"
fi

# 6. Build for SageMaker's hosts (x86_64). No provenance or SBOM attestations: they turn the push
# into an OCI image index, a manifest type SageMaker rejects (moby/buildkit#5480).
say "building $REPOSITORY:$REVISION for linux/amd64 from $BASE_REGISTRY"
docker buildx build --platform linux/amd64 --provenance=false --sbom=false --load \
    --build-arg REGION="$REGION" --build-arg BASE_ACCOUNT="$BASE_ACCOUNT" \
    --build-arg GIT_REVISION="$REVISION" \
    --tag "$REPOSITORY:$REVISION" --file "$REPO_DIR/Dockerfile" "$REPO_DIR" >&2 \
    || die "docker buildx build failed (see the output above)"

# 7. Tag and push. Progress goes to stderr: stdout carries only the settings line image = "...".
docker tag "$REPOSITORY:$REVISION" "$IMAGE_URI" || die "docker tag $IMAGE_URI failed"
docker push "$IMAGE_URI" >&2 || die "docker push $IMAGE_URI failed"

say "pushed; put this line in your launcher settings:"
echo "image = \"$IMAGE_URI\""
