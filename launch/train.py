"""``python launch/train.py``: submit one SageMaker training job (or run it locally).

    python launch/train.py --dry-run         # print the exact CreateTrainingJob request, send nothing
    python launch/train.py --wait            # submit, follow, end with the status and failure reason
    python launch/train.py --local --hosts 2 # the same container program on this machine

:func:`train` is the command; :func:`main` only parses arguments and reports.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import from the repo root, not from launch/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from launch import aws, cli, jobs
from launch.settings import Settings, load_settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutcome:
    """What ``train`` did: the request (dry run) or the job's name, and its end when waited for."""

    job_name: str
    request: dict[str, Any] | None = None
    status: str | None = None
    failure_reason: str | None = None
    final_metrics: dict[str, float] | None = None


def train(settings: Settings, *, dry_run: bool = False, wait: bool = False,
          session: Any = None, poll_seconds: float = 30.0) -> TrainOutcome:
    """Submit the training job described by ``settings`` (``session``: a boto3 session)."""
    if dry_run:
        request = jobs.training_request(settings)
        return TrainOutcome(request["TrainingJobName"], request=request)
    session = session or aws.boto_session(settings.region)
    name = aws.submit_training(jobs.build_trainer(settings, aws.sdk_session(session)))
    if not wait:
        return TrainOutcome(name)
    desc = aws.wait_for_training(session.client("sagemaker"), name, poll_seconds)
    metrics = {m["MetricName"]: m["Value"] for m in desc.get("FinalMetricDataList", [])}
    return TrainOutcome(name, status=desc["TrainingJobStatus"], failure_reason=desc.get("FailureReason"),
                        final_metrics=metrics)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train XGBoost on a Snowflake table with SageMaker.")
    cli.add_settings_arguments(p)
    p.add_argument("--dry-run", action="store_true", help="print the CreateTrainingJob request; send nothing")
    p.add_argument("--wait", action="store_true", help="follow the job to its end")
    local = p.add_argument_group("local mode (no AWS)")
    local.add_argument("--local", action="store_true", help="run the job on this machine")
    local.add_argument("--hosts", type=int, default=2, help="simulated hosts (default 2)")
    local.add_argument("--workdir", type=Path, help="work directory (default ./work)")
    local.add_argument("--demo-data", choices=("california", "synthetic", "mixed"), default="california")
    local.add_argument("--rows", type=int, help="rows of synthetic or mixed demo data")
    return p


def main(argv: list[str] | None = None, *, session: Any = None) -> int:
    args = parser().parse_args(argv)
    if args.local:
        from launch.local import main_local

        args.set = [item.removeprefix("hyperparameters.") for item in args.set]
        return cli.run(lambda: main_local(args))
    cli.configure_logging(args.verbose)
    return cli.run(lambda: _submit(args, session))


def _submit(args: argparse.Namespace, session: Any) -> int:
    settings = load_settings(args.settings, args.set)
    outcome = train(settings, dry_run=args.dry_run, wait=args.wait, session=session)
    if outcome.request is not None:
        print(json.dumps(outcome.request, indent=2, sort_keys=True, default=str))
        return 0
    print(f"training job: {outcome.job_name}")
    if outcome.status is None:
        return 0
    print(f"status: {outcome.status}")
    for name, value in (outcome.final_metrics or {}).items():
        print(f"  {name} = {value:g}")
    if outcome.status != "Completed":
        print(f"error: training job {outcome.job_name} {outcome.status}: {outcome.failure_reason or 'no reason given'}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
