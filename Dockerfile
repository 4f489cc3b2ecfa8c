# The training image: our entry program and its pinned runtime on the SageMaker XGBoost image.
# Build and push with `make build-push` (container/build_push.sh); docs/image.md explains each line.

# SageMaker XGBoost 3.0-5 (XGBoost 3.0.5, Python 3.10). The registry account differs per region:
# https://docs.aws.amazon.com/sagemaker/latest/dg-ecr-paths/sagemaker-algo-docker-registry-paths.html
# For a reproducible build pass BASE_IMAGE=...@sha256:<digest> (tags are moved by AWS patches).
ARG REGION=us-west-2
ARG BASE_ACCOUNT=246618743249
ARG BASE_IMAGE=${BASE_ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/sagemaker-xgboost:3.0-5
FROM ${BASE_IMAGE}

ARG GIT_REVISION=unknown
LABEL org.opencontainers.image.title="snowflake-sagemaker-xgboost" \
      org.opencontainers.image.description="Train XGBoost on a Snowflake table across SageMaker hosts" \
      org.opencontainers.image.revision="${GIT_REVISION}"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Runtime requirements are installed now, at build time, so a job installs nothing at start (it may
# run without internet access). The files go to a temporary path that is deleted: a requirements.txt
# or setup.py left in the image is what the base image's script-mode runner would pip-install.
#
# container/install_runtime.py is the one install step, also run by the image-environment check
# (tests/integration/test_image_env.py). It fails the build if the base image's xgboost, numpy,
# pandas, pyarrow, scipy, matplotlib, boto3, botocore or pip differ from requirements-base.txt (the
# versions the tests ran), holds them at those versions with a constraints file while pip installs
# requirements.txt, and prints what the install moved (protobuf, requests, ...: docs/image.md).
COPY requirements.txt requirements-base.txt container/install_runtime.py /tmp/build/
RUN python3 /tmp/build/install_runtime.py --no-cache-dir /tmp/build && rm -rf /tmp/build

# The entry program: `python3 -m container`, run from /opt/program. Not under /opt/ml/code and
# without SAGEMAKER_PROGRAM, so the base image's runner (which pip-installs at every start and
# overwrites output/failure, ../shared/REFERENCE.md section 1) is never involved.
WORKDIR /opt/program
COPY training/ /opt/program/training/
COPY container/ /opt/program/container/
ENV PYTHONPATH=/opt/program

# SageMaker starts the image as `<entrypoint> train`; the program accepts `train` and reads /opt/ml.
# https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-dockerfile.html
ENTRYPOINT ["python3", "-m", "container"]
