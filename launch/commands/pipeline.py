"""``python -m launch pipeline``: a SageMaker Pipeline whose one step runs the tuning job.

    python -m launch pipeline                    # print the pipeline definition (no AWS call)
    python -m launch pipeline --upsert --start   # create or update it, then start an execution
    python -m launch pipeline --start --wait     # start one and follow it: status and steps as they change

Pipeline parameters: ``InstanceType``, ``InstanceCount`` and ``TrainingImage`` (defaults from the
settings), so an execution can change them without a new definition. The definition is built
with no AWS call and is the same on every build (no random names in it).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from launch import aws, console, follower, jobs
from launch.settings import Settings, load_settings
from training.errors import ConfigError, UserError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineOutcome:
    name: str
    definition: dict[str, Any]
    pipeline_arn: str | None = None
    execution_arn: str | None = None
    status: str | None = None
    failure_reason: str | None = None


def pipeline(settings: Settings, *, upsert: bool = False, start: bool = False, wait: bool = False,
             session: Any = None, poll_seconds: float = 30.0, echo: follower.Echo = print,
             sleep: follower.Sleep = time.sleep) -> PipelineOutcome:
    """Build the pipeline; optionally upsert it and start an execution (``session``: boto3), and
    with ``wait`` follow the execution through ``echo`` until it ends."""
    jobs.check_objective(settings)
    boto = session or aws.boto_session(settings.region)
    built = jobs.build_pipeline(settings, aws.sdk_session(boto, pipeline=True))
    definition = json.loads(built.definition())
    if not (upsert or start):
        return PipelineOutcome(built.name, definition)
    tags = [{"Key": k, "Value": v} for k, v in settings.tags.items()]
    arn = aws.upsert_pipeline(built, settings.pipeline_role, tags) if upsert else None
    execution = aws.start_pipeline(built) if start else None
    if not (wait and execution):
        return PipelineOutcome(built.name, definition, arn, execution)
    echo(f"following {execution} until it ends (Ctrl-C stops following, not the execution)")
    desc = follower.follow_pipeline(boto.client("sagemaker"), execution, echo=echo, poll_seconds=poll_seconds,
                                    sleep=sleep)
    return PipelineOutcome(built.name, definition, arn, execution, desc["PipelineExecutionStatus"],
                           desc.get("FailureReason"))


def command_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``pipeline``'s flags: a subparser of ``python -m launch``."""
    description = "Define, upsert and start the tuning pipeline."
    p = subparsers.add_parser("pipeline", help="define, upsert and start the tuning pipeline",
                               description=description)
    console.add_settings_arguments(p)
    p.add_argument("--upsert", action="store_true", help="create or update the pipeline")
    p.add_argument("--start", action="store_true", help="start an execution (after --upsert, or of an existing one)")
    p.add_argument("--wait", action="store_true", help="with --start: follow the execution to its end, showing its "
                   "status and each step's as they change (Ctrl-C stops following, not the execution)")
    p.add_argument("--dry-run", action="store_true", help="print the definition only (the default)")
    p.set_defaults(func=pipeline_command)
    return p


def pipeline_command(args: argparse.Namespace, session: Any = None) -> int:
    console.configure_logging(args.verbose)
    settings = load_settings(args.settings, args.set)
    send = not args.dry_run
    if args.wait and not args.start:
        raise ConfigError("pipeline --wait follows the execution that --start starts: add --start")
    outcome = pipeline(settings, upsert=args.upsert and send, start=args.start and send, wait=args.wait,
                       session=session)
    if not (outcome.pipeline_arn or outcome.execution_arn):
        print(json.dumps(outcome.definition, indent=2, sort_keys=True))
        return 0
    if outcome.pipeline_arn:
        print(f"pipeline: {outcome.pipeline_arn}")
    if outcome.execution_arn:
        print(f"execution: {outcome.execution_arn}")
    if outcome.status is None:
        return 0
    print(f"status: {outcome.status}")
    if outcome.status != "Succeeded":
        raise UserError(f"pipeline execution {outcome.execution_arn} {outcome.status}: "
                        f"{outcome.failure_reason or 'no reason given'}")
    return 0
