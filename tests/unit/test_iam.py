"""The IAM documents: valid, least-privilege, and naming every AWS action the code calls.

iam/actions.json is the one list of actions (with who calls each); these tests hold the policies to
it, and hold it to the boto3 operations that training/ and container/ actually call.
"""

import json
import re
import string
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

REPO = Path(__file__).resolve().parents[2]
IAM = REPO / "iam"
ACTIONS = json.loads((IAM / "actions.json").read_text())
DOCUMENTS = [name for name in ACTIONS if not name.startswith("_")]

# Sample values for every placeholder (iam/README.md documents each one).
PLACEHOLDERS = {
    "AccountId": "123456789012",
    "Region": "us-west-2",
    "SecretArn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:snowflake/xgboost-AbCdEf",
    "SecretKmsKeyId": "1234abcd-12ab-34cd-56ef-1234567890ab",
    "Repository": "snowflake-sagemaker-xgboost",
    "BaseAccount": "246618743249",
    "Bucket": "my-ml-bucket",
    "Prefix": "snowflake-xgboost",
    "MlflowArn": "arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/team",
    "MlflowArtifactBucket": "my-mlflow-artifacts",
    "MlflowArtifactPrefix": "team",
    "ExecutionRoleName": "snowflake-xgboost-training",
}
ARN = re.compile(r"arn:aws:[a-z0-9-]+:([a-z0-9-]*):(\d{12}|):\S+")
# Actions that take no resource ARN (or that SageMaker's VPC guide grants on "*"):
# https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html
# https://docs.aws.amazon.com/sagemaker/latest/dg/train-vpc.html
STAR_ONLY = {
    "ecr:GetAuthorizationToken",
    "sts:GetCallerIdentity",
    "cloudwatch:PutMetricData",
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
}
# boto3 client name -> IAM service prefix, where they differ.
IAM_PREFIX = {"sagemaker-runtime": "sagemaker"}


def render(name: str) -> dict:
    """The document with sample values substituted; KeyError names an undocumented placeholder."""
    return json.loads(string.Template((IAM / name).read_text()).substitute(PLACEHOLDERS))


def statements(name: str) -> list[dict]:
    return render(name)["Statement"]


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def granted(name: str) -> set[str]:
    return {action for st in statements(name) for action in as_list(st["Action"])}


def statement_for(name: str, action: str) -> dict:
    (found,) = [st for st in statements(name) if action in as_list(st["Action"])]
    return found


@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_is_valid_and_grants_exactly_the_listed_actions(name):
    document = render(name)
    assert document["Version"] == "2012-10-17"
    assert all(st["Effect"] == "Allow" for st in document["Statement"])
    assert granted(name) == set(ACTIONS[name]), "update iam/actions.json and the policy together"


@pytest.mark.parametrize("name", ["execution-role-policy.json", "launcher-user-policy.json"])
def test_every_resource_is_an_arn_in_the_account_and_region(name):
    for st in statements(name):
        for resource in as_list(st["Resource"]):
            if resource == "*":
                assert set(as_list(st["Action"])) <= STAR_ONLY, f"{st['Sid']}: '*' for {st['Action']}"
                continue
            match = ARN.fullmatch(resource)
            assert match, f"{st['Sid']}: {resource} is not an ARN"
            region, account = match.groups()
            assert region in ("", "us-west-2"), resource
            assert account in ("", "123456789012", PLACEHOLDERS["BaseAccount"]), resource


@pytest.mark.parametrize("name", ["execution-role-policy.json", "launcher-user-policy.json"])
def test_no_service_wide_wildcards_except_managed_mlflow(name):
    wild = {a for a in granted(name) if a.endswith("*")}
    assert wild <= {"sagemaker-mlflow:*"}
    assert (
        statement_for("execution-role-policy.json", "sagemaker-mlflow:*")["Resource"]
        == PLACEHOLDERS["MlflowArn"]
    )


@pytest.mark.parametrize("name", ["execution-role-policy.json", "launcher-user-policy.json"])
def test_pass_role_is_the_execution_role_to_sagemaker_only(name):
    st = statement_for(name, "iam:PassRole")
    assert st["Resource"] == "arn:aws:iam::123456789012:role/snowflake-xgboost-training"
    assert st["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_secret_access_is_the_one_secret_and_its_key_through_secrets_manager():
    name = "execution-role-policy.json"
    assert statement_for(name, "secretsmanager:GetSecretValue")["Resource"] == PLACEHOLDERS["SecretArn"]
    kms = statement_for(name, "kms:Decrypt")
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.us-west-2.amazonaws.com"}}


def test_s3_is_limited_to_the_job_prefix_and_metrics_to_sagemakers_namespace():
    name = "execution-role-policy.json"
    listing = statement_for(name, "s3:ListBucket")
    assert listing["Resource"] == "arn:aws:s3:::my-ml-bucket"
    assert listing["Condition"]["StringLike"]["s3:prefix"] == ["snowflake-xgboost", "snowflake-xgboost/*"]
    objects = statement_for(name, "s3:GetObject")
    assert objects["Resource"] == "arn:aws:s3:::my-ml-bucket/snowflake-xgboost/*"
    metrics = statement_for(name, "cloudwatch:PutMetricData")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}}


def test_trust_policy_lets_only_sagemaker_in_this_account_assume_the_role():
    (st,) = statements("trust-policy.json")
    assert st["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert st["Action"] == "sts:AssumeRole"
    assert st["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}


def test_readme_documents_every_placeholder():
    readme = (IAM / "README.md").read_text()
    used = set()
    for name in DOCUMENTS:
        used |= {m.group(1) for m in re.finditer(r"\$\{(\w+)\}", (IAM / name).read_text())}
    assert used == set(PLACEHOLDERS)
    assert all(f"${{{p}}}" in readme for p in used), "document each placeholder in iam/README.md"


def boto3_actions_called(*folders: str) -> set[str]:
    """IAM actions for the boto3 operations called in `folders`: every `.op(` whose name is an
    operation of a service that the code makes a client for (`client("service")`)."""
    sources = "\n".join(p.read_text() for folder in folders for p in (REPO / folder).rglob("*.py"))
    services = set(re.findall(r"""client\(\s*["']([a-z0-9-]+)["']""", sources))
    calls = set(re.findall(r"\.([a-z][a-z0-9_]*)\(", sources))
    session = botocore.session.get_session()
    actions = set()
    for service in services:
        model = session.get_service_model(service)
        prefix = IAM_PREFIX.get(service, model.signing_name or service)
        actions |= {f"{prefix}:{op}" for op in model.operation_names if xform_name(op) in calls}
    return actions


def test_every_boto3_call_in_the_job_is_granted_to_the_execution_role():
    called = boto3_actions_called("training", "container")
    missing = called - set(ACTIONS["execution-role-policy.json"])
    assert not missing, f"the job calls {sorted(missing)}: add them to iam/actions.json and the role policy"


def test_the_scan_finds_the_secret_read():
    # Guards the scan itself: the job does read the secret with boto3 (training/job.py).
    assert "secretsmanager:GetSecretValue" in boto3_actions_called("training", "container")
