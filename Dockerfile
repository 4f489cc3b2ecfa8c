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
# run without internet access). Both files go to a temporary path that is deleted: a requirements.txt
# or setup.py left in the image is what the base image's script-mode runner would pip-install.
#
# requirements-base.txt names what the base image already provides (xgboost, numpy, pandas, pyarrow,
# boto3). It is NOT installed here: the base image owns those builds. Instead it is turned into a
# constraints file holding them at the base image's own versions, so that pip fails the build rather
# than silently replacing them to satisfy a new dependency. Other base packages (protobuf, requests,
# cryptography) may be upgraded: their pins protect the base image's runner, which we do not run.
COPY requirements.txt requirements-base.txt /tmp/build/
RUN python3 -c 'import re, sys, importlib.metadata as md; \
names = [re.split(r"[<>=!~;\[ ]", line.split("#")[0].strip())[0] for line in open(sys.argv[1])]; \
print("\n".join(f"{n}=={md.version(n)}" for n in names if n))' \
        /tmp/build/requirements-base.txt > /tmp/build/base-constraints.txt \
    && cat /tmp/build/base-constraints.txt \
    && python3 -m pip install --no-cache-dir --disable-pip-version-check \
        -r /tmp/build/requirements.txt -c /tmp/build/base-constraints.txt \
    && python3 -c 'import xgboost, snowflake.connector, mlflow, sagemaker_mlflow; print("xgboost", xgboost.__version__)' \
    && rm -rf /tmp/build

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
