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
    "PipelineRoleName": "snowflake-xgboost-pipeline",
    "JobPrefix": "xgb-housing",
    "VolumeKmsKeyId": "2222abcd-12ab-34cd-56ef-1234567890ab",
    "OutputKmsKeyId": "3333abcd-12ab-34cd-56ef-1234567890ab",
}
POLICIES = ["execution-role-policy.json", "pipeline-role-policy.json", "launcher-user-policy.json"]
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


def statement_named(name: str, sid: str) -> dict:
    (found,) = [st for st in statements(name) if st["Sid"] == sid]
    return found


@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_is_valid_and_grants_exactly_the_listed_actions(name):
    document = render(name)
    assert document["Version"] == "2012-10-17"
    assert all(st["Effect"] == "Allow" for st in document["Statement"])
    assert granted(name) == set(ACTIONS[name]), "update iam/actions.json and the policy together"


@pytest.mark.parametrize("name", POLICIES)
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


@pytest.mark.parametrize("name", POLICIES)
def test_no_service_wide_wildcards_except_managed_mlflow(name):
    wild = {a for a in granted(name) if a.endswith("*")}
    assert wild <= {"sagemaker-mlflow:*"}
    assert (
        statement_for("execution-role-policy.json", "sagemaker-mlflow:*")["Resource"]
        == PLACEHOLDERS["MlflowArn"]
    )


EXECUTION_ROLE = "arn:aws:iam::123456789012:role/snowflake-xgboost-training"
PIPELINE_ROLE = "arn:aws:iam::123456789012:role/snowflake-xgboost-pipeline"


@pytest.mark.parametrize(("name", "roles"), [
    ("launcher-user-policy.json", [EXECUTION_ROLE, PIPELINE_ROLE]),  # jobs get the execution role, the pipeline its own
    ("pipeline-role-policy.json", EXECUTION_ROLE),  # the tuning step hands the execution role to its trials
])
def test_pass_role_is_only_our_roles_to_sagemaker_only(name, roles):
    st = statement_for(name, "iam:PassRole")
    assert st["Resource"] == roles
    assert st["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_the_job_itself_passes_no_role_and_starts_no_sagemaker_job():
    # A pipeline's grants live in pipeline-role-policy.json (attach it to the execution role only
    # when pipeline.role is unset): a training job needs neither.
    assert not {a for a in granted("execution-role-policy.json") if a.startswith("iam:")}
    assert granted("execution-role-policy.json") & {a for a in granted("pipeline-role-policy.json")} == set()


def test_the_launcher_touches_only_jobs_and_pipelines_under_the_job_prefix():
    # Create, Describe, List, Stop and tag: only training jobs, tuning jobs (and their trials, named after
    # them) and pipelines whose names start with the settings' job_prefix.
    for st in statements("launcher-user-policy.json"):
        jobs = [a for a in as_list(st["Action"]) if a.startswith("sagemaker:") and a != "sagemaker:CallMlflowAppApi"]
        for resource in as_list(st["Resource"]) if jobs else []:
            assert resource.endswith(("/xgb-housing-*", "/xgb-housing-*/execution/*")), f"{st['Sid']}: {resource}"
    # Reading log events only from the job's own streams (DescribeLogStreams lists names, it reads no event):
    # a log-group:...:* resource would match every stream of every job.
    for st in statements("launcher-user-policy.json"):
        actions = as_list(st["Action"])
        if "logs:GetLogEvents" in actions:
            assert actions == ["logs:GetLogEvents"] and all(
                r.endswith(":log-stream:xgb-housing-*") for r in as_list(st["Resource"])), st["Sid"]
        elif any(a.startswith("logs:") for a in actions):
            assert actions == ["logs:DescribeLogStreams"], st["Sid"]


def test_mlflow_is_the_one_tracking_server_or_app_for_both_signing_services():
    # sagemaker-mlflow signs for "sagemaker-mlflow" (mlflow-tracking-server) or "sagemaker"
    # (mlflow-app, action sagemaker:CallMlflowAppApi): sagemaker_mlflow/auth_provider.py.
    for name in ("execution-role-policy.json", "launcher-user-policy.json"):
        mlflow = {a for a in granted(name) if a.startswith("sagemaker-mlflow:") or a == "sagemaker:CallMlflowAppApi"}
        assert "sagemaker:CallMlflowAppApi" in mlflow and len(mlflow) > 1
        for action in mlflow:
            assert statement_for(name, action)["Resource"] == PLACEHOLDERS["MlflowArn"], action


def test_each_kms_key_is_granted_only_what_its_use_needs():
    name = "execution-role-policy.json"
    volume = statement_named(name, "VolumeKeyGrantForTheHostsVolumes")
    assert volume["Action"] == ["kms:CreateGrant"]
    assert volume["Resource"].endswith(":key/" + PLACEHOLDERS["VolumeKmsKeyId"])
    assert volume["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}  # grants for EBS, not for people
    output = statement_named(name, "OutputKeyEncryptsTheModelAndCheckpoints")
    assert set(output["Action"]) == {"kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"}
    assert output["Resource"].endswith(":key/" + PLACEHOLDERS["OutputKmsKeyId"])
    # The launcher uploads a registered model's model.tar.gz with the output key, through S3 only.
    upload = statement_named("launcher-user-policy.json", "OutputKeyEncryptsUploadedModels")
    assert set(upload["Action"]) == {a for a in granted("launcher-user-policy.json") if a.startswith("kms:")}
    assert upload["Resource"] == output["Resource"]
    assert upload["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-west-2.amazonaws.com"}}


def test_secret_access_is_the_one_secret_and_its_key_through_secrets_manager():
    name = "execution-role-policy.json"
    assert statement_for(name, "secretsmanager:GetSecretValue")["Resource"] == PLACEHOLDERS["SecretArn"]
    kms = statement_named(name, "DecryptTheSecretThroughSecretsManager")
    assert kms["Action"] == ["kms:Decrypt"]
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
    """IAM actions for the boto3 operations called in `folders` (or `.py` files): every `.op(` whose name is an
    operation of a service that the code makes a client for (`client("service")`)."""
    paths = [p for folder in folders for p in ([REPO / folder] if folder.endswith(".py") else (REPO / folder).rglob("*.py"))]
    sources = "\n".join(p.read_text() for p in paths)
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
    # Guards the scan itself: the job does read the secret with boto3 (training/read/credentials.py).
    assert "secretsmanager:GetSecretValue" in boto3_actions_called("training", "container")


DEPLOY_MODULES = ("launch/commands/deploy.py", "launch/endpoints.py", "launch/follower.py")


def test_every_boto3_call_of_deploy_is_granted_to_the_launcher_user():
    called = boto3_actions_called(*DEPLOY_MODULES) - {"sagemaker:Search"}  # follower.py's re .search(), not SageMaker's
    assert {"sagemaker:CreateModel", "sagemaker:CreateEndpoint", "sagemaker:InvokeEndpoint",  # the scan works
            "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpointConfig", "sagemaker:DeleteModel"} <= called
    missing = called - set(ACTIONS["launcher-user-policy.json"])
    assert not missing, f"deploy calls {sorted(missing)}: add them to iam/actions.json and the launcher policy"


def test_endpoints_and_uploads_stay_under_the_prefixes():
    endpoints = statement_named("launcher-user-policy.json", "EndpointsUnderTheJobPrefix")
    assert all(r.rsplit(":", 1)[1].split("/")[1] == "xgb-housing-*" for r in endpoints["Resource"])
    assert {r.rsplit(":", 1)[1].split("/")[0] for r in endpoints["Resource"]} == {"model", "endpoint-config", "endpoint"}
    upload = statement_for("launcher-user-policy.json", "s3:PutObject")
    assert upload["Resource"] == "arn:aws:s3:::my-ml-bucket/snowflake-xgboost/*"
    # the endpoint's container logs to /aws/sagemaker/Endpoints/<endpoint> with the execution role
    logs = statement_for("execution-role-policy.json", "logs:PutLogEvents")["Resource"]
    assert "arn:aws:logs:us-west-2:123456789012:log-group:/aws/sagemaker/Endpoints/xgb-housing-*:*" in logs


@pytest.mark.parametrize(("action", "kind"), [
    ("sagemaker:DescribeEndpointConfig", "endpoint-config"),
    ("sagemaker:UpdateEndpoint", "endpoint"),
    ("sagemaker:DeleteEndpointConfig", "endpoint-config"),
    ("sagemaker:DeleteModel", "model"),
])
def test_deploy_updates_an_endpoint_and_deletes_what_it_ran_before_only_under_the_job_prefix(action, kind):
    # deploy to an existing endpoint: UpdateEndpoint to the new config, then the old config and its models go
    st = statement_for("launcher-user-policy.json", action)
    resources = as_list(st["Resource"])
    assert f"arn:aws:sagemaker:us-west-2:123456789012:{kind}/xgb-housing-*" in resources
    assert all(r.rsplit(":", 1)[1].split("/", 1)[1] == "xgb-housing-*" for r in resources), resources
    assert "Condition" not in st and action in ACTIONS["launcher-user-policy.json"]
