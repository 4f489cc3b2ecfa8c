"""Pure builders: settings -> ModelTrainer, HyperparameterTuner, Pipeline, and their exact requests.

Nothing here talks to AWS. The trainer is the one place a job is described; the tuner and the
pipeline reuse it. What the container expects, and why the builders look the way they do:

- The image's own ENTRYPOINT runs our program with its code baked in: no ``SourceCode``, no
  input channels (the SDK then uploads nothing and adds no driver channel).
- The environment carries only the Snowflake secret's *id* and the MLflow settings: anything
  in it is shown by DescribeTrainingJob. Hyperparameters are strings.
- Metric definitions match the container's round lines (``[12]\\ttrain-rmse:0.1\\t...``, prefixed
  with a timestamp and host, so the regexes are unanchored): one per data set and ``eval_metric``
  (:mod:`launch.metric_definitions`).
- SDK v3 (3.27) gaps closed here: the tuner ignores the trainer's metric definitions (passed to
  the tuner), drops network isolation, inter-container encryption, the volume KMS key and the
  warm pool's keep-alive (put back by :class:`_Tuner`), and names tuning jobs by the minute (we always pass a unique name).

The SDK is imported inside the functions: it takes seconds to import, and ``--local`` and
settings errors need none of it. ``sagemaker.mlops`` even builds a boto3 client at import.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import warnings
from datetime import datetime, timezone
from typing import Any

import boto3

from launch import aws
from launch.metric_definitions import metric_definitions
from launch.settings import Settings, check_pipeline_settings, connection_text
from launch.tuning_space import search_space
from training.contract import (
    CONNECTION_ENV,
    EXPERIMENT_ENV,
    IMAGE_ENV,
    LEDGER_ENV,
    REGION_ENV,
    SECRET_ID_ENV,
    TRACKING_URI_ENV,
)
from training.errors import ConfigError
from training.hyperparameters import TuningRange

logger = logging.getLogger(__name__)



TUNING_NAME_MAX = 32
"""CreateHyperParameterTuningJob allows 32 characters."""

PIPELINE_PARAMETERS = ("InstanceType", "InstanceCount", "TrainingImage")


# ---------------------------------------------------------------------------------------------
# Pieces


def check_objective(settings: Settings) -> list[dict[str, str]]:
    """The metric definitions, after checking that one of them produces the tuning objective."""
    definitions = metric_definitions(settings.eval_metrics)
    names = [d["Name"] for d in definitions]
    if settings.tuning.objective not in names:
        raise ConfigError(
            f"settings key 'tuning.objective' is {settings.tuning.objective!r}, which no metric definition "
            f"produces (the job prints {', '.join(names)}): set tuning.objective to one of them, or add its "
            f"metric to hyperparameters.eval_metric"
        )
    return definitions


def environment(settings: Settings, image: Any = None) -> dict[str, Any]:
    """The job's environment: the secret's id (never a value) or the workload identity connection
    (no secret in it; with the region the connector signs for), MLflow's settings, the image (the run
    records it; ``image``: a pipeline's image parameter) and the user's ``[environment]``."""
    env: dict[str, Any]
    if settings.data.snowflake_connection:
        env = {CONNECTION_ENV: connection_text(settings.data.snowflake_connection), REGION_ENV: settings.region}
    else:
        env = {SECRET_ID_ENV: settings.data.snowflake_secret_id}
    if settings.mlflow.tracking_uri:
        env[TRACKING_URI_ENV] = settings.mlflow.tracking_uri
    if settings.mlflow.experiment:
        env[EXPERIMENT_ENV] = settings.mlflow.experiment
    if settings.output.collective_ledger:
        env[LEDGER_ENV] = settings.output.ledger_dir
    env[IMAGE_ENV] = image if image is not None else settings.image
    return {**settings.environment, **env}


def base_job_name(prefix: str) -> str:
    """``<prefix>-<random>``: the SDK appends a per-second timestamp, the random part keeps two
    submissions in the same second apart."""
    return f"{prefix}-{secrets.token_hex(3)}"


def tuning_job_name(prefix: str, now: datetime | None = None) -> str:
    """A unique tuning job name within 32 characters: ``<prefix>-<yymmddHHMMSS>-<random>``."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%y%m%d%H%M%S")
    suffix = secrets.token_hex(3)  # 24 random bits: two launches in one second collide ~1 in 16M
    room = TUNING_NAME_MAX - len(stamp) - len(suffix) - 2
    return f"{prefix[:room].rstrip('-')}-{stamp}-{suffix}"


def _sdk_range(rng: TuningRange) -> Any:
    from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter

    if rng.kind == "categorical":
        return CategoricalParameter(list(rng.values))
    if rng.kind == "integer":
        return IntegerParameter(int(rng.low), int(rng.high), scaling_type=rng.scaling)
    return ContinuousParameter(rng.low, rng.high, scaling_type=rng.scaling)


def parameter_ranges(settings: Settings) -> dict[str, Any]:
    """The SDK's parameter ranges for the search space (table defaults, settings overrides)."""
    return {name: _sdk_range(rng) for name, rng in search_space(settings).items()}


# ---------------------------------------------------------------------------------------------
# Trainer, tuner, pipeline


def build_trainer(settings: Settings, session: Any, *, image: Any = None, instance_type: Any = None,
                  instance_count: Any = None, base_name: str | None = None) -> Any:
    """The ModelTrainer for one job. ``image``/``instance_*`` may be pipeline parameters."""
    from sagemaker.core.training.configs import (
        CheckpointConfig,
        Compute,
        Networking,
        OutputDataConfig,
        StoppingCondition,
        Tag,
    )
    from sagemaker.train import ModelTrainer

    compute, kms = settings.compute, settings.kms
    with aws.role_validation_off():
        trainer = ModelTrainer(
            sagemaker_session=session,
            role=settings.role,
            base_job_name=base_name or base_job_name(settings.job_prefix),
            training_image=image or settings.image,
            compute=Compute(
                instance_type=instance_type or compute.instance_type,
                instance_count=instance_count or compute.instance_count,
                volume_size_in_gb=compute.volume_size_gb,
                volume_kms_key_id=kms.volume_key_id or None,
                enable_managed_spot_training=compute.spot or None,
                keep_alive_period_in_seconds=compute.keep_alive_seconds or None,
            ),
            stopping_condition=StoppingCondition(
                max_runtime_in_seconds=compute.max_runtime_seconds,
                max_wait_time_in_seconds=compute.max_wait_seconds,
            ),
            networking=_networking(settings, Networking),
            output_data_config=OutputDataConfig(
                s3_output_path=settings.output.s3_path, kms_key_id=kms.output_key_id or None,
                compression_type="GZIP"),
            checkpoint_config=(
                CheckpointConfig(s3_uri=settings.output.checkpoint_s3_uri,
                                 local_path=settings.output.checkpoint_local_path)
                if settings.output.checkpoint_s3_uri else None),
            environment=environment(settings, image),
            hyperparameters=dict(settings.job_hyperparameters),
            tags=[Tag(key=k, value=v) for k, v in settings.tags.items()] or None,
        )
    return trainer.with_metric_definitions(_metric_objects(settings))


def _networking(settings: Settings, networking: type) -> Any:
    network = settings.network
    if not (network.subnets or network.network_isolation or network.inter_container_encryption):
        return None
    return networking(
        subnets=list(network.subnets) or None,
        security_group_ids=list(network.security_group_ids) or None,
        enable_network_isolation=network.network_isolation,
        enable_inter_container_traffic_encryption=network.inter_container_encryption,
    )


def _metric_objects(settings: Settings) -> list[Any]:
    from sagemaker.core.training.configs import MetricDefinition

    return [MetricDefinition(name=d["Name"], regex=d["Regex"]) for d in metric_definitions(settings.eval_metrics)]


@functools.cache
def _tuner_class() -> type:
    """HyperparameterTuner that puts back what SDK 3.27 drops from each trial's definition."""
    from sagemaker.train.tuner import HyperparameterTuner

    class _Tuner(HyperparameterTuner):
        def _build_training_job_definition(self, inputs: Any) -> Any:
            definition = super()._build_training_job_definition(inputs)
            trainer = self.model_trainer
            networking = trainer.networking
            if networking is not None and networking.enable_network_isolation:
                definition.enable_network_isolation = True
            if networking is not None and networking.enable_inter_container_traffic_encryption:
                definition.enable_inter_container_traffic_encryption = True
            if trainer.compute.volume_kms_key_id:
                definition.resource_config.volume_kms_key_id = trainer.compute.volume_kms_key_id
            if trainer.compute.keep_alive_period_in_seconds:  # a warm pool carries over from trial to trial
                definition.resource_config.keep_alive_period_in_seconds = trainer.compute.keep_alive_period_in_seconds
            return definition

    return _Tuner


def build_tuner(settings: Settings, trainer: Any) -> Any:
    """The tuning job around ``trainer``: ranges from the hyperparameter table, objective checked."""
    definitions = check_objective(settings)
    tuning = settings.tuning
    return _tuner_class()(
        model_trainer=trainer,
        objective_metric_name=tuning.objective,
        objective_type=tuning.objective_type,
        hyperparameter_ranges=parameter_ranges(settings),
        metric_definitions=definitions,
        strategy=tuning.strategy,
        strategy_config=_strategy_config(settings),
        max_jobs=tuning.max_jobs if tuning.max_jobs or tuning.strategy == "Grid" else 10,
        max_parallel_jobs=tuning.max_parallel_jobs,
        max_runtime_in_seconds=tuning.max_runtime_seconds,
        early_stopping_type=tuning.early_stopping,
        random_seed=tuning.random_seed,
        warm_start_config=_warm_start(settings),
        completion_criteria_config=_completion_criteria(settings),
        tags=[{"Key": k, "Value": v} for k, v in settings.tags.items()] or None,
    )


def _strategy_config(settings: Settings) -> Any:
    tuning = settings.tuning
    if tuning.strategy != "Hyperband":
        return None
    from sagemaker.core.shapes import HyperbandStrategyConfig, HyperParameterTuningJobStrategyConfig

    config = HyperbandStrategyConfig(min_resource=tuning.hyperband_min_resource,
                                     max_resource=tuning.hyperband_max_resource)
    return HyperParameterTuningJobStrategyConfig(hyperband_strategy_config=config)


def _completion_criteria(settings: Settings) -> Any:
    """When the tuning job may stop before ``max_jobs``: a target value, trials that stop improving, convergence."""
    tuning = settings.tuning
    if tuning.target_objective_value is None and tuning.stop_after_not_improving is None \
            and not tuning.complete_on_convergence:
        return None
    from sagemaker.core.shapes import (
        BestObjectiveNotImproving,
        ConvergenceDetected,
        TuningJobCompletionCriteria,
    )

    criteria: dict[str, Any] = {}
    if tuning.target_objective_value is not None:
        criteria["target_objective_metric_value"] = tuning.target_objective_value
    if tuning.stop_after_not_improving is not None:
        criteria["best_objective_not_improving"] = BestObjectiveNotImproving(
            max_number_of_training_jobs_not_improving=tuning.stop_after_not_improving)
    if tuning.complete_on_convergence:
        criteria["convergence_detected"] = ConvergenceDetected(complete_on_convergence="Enabled")
    return TuningJobCompletionCriteria(**criteria)


def _warm_start(settings: Settings) -> Any:
    """Built here: the SDK's ``transfer_learning_tuner()`` fails in 3.27."""
    parents = settings.tuning.warm_start_from
    if not parents:
        return None
    from sagemaker.core.shapes import HyperParameterTuningJobWarmStartConfig, ParentHyperParameterTuningJob

    return HyperParameterTuningJobWarmStartConfig(
        parent_hyper_parameter_tuning_jobs=[
            ParentHyperParameterTuningJob(hyper_parameter_tuning_job_name=name) for name in parents],
        warm_start_type=settings.tuning.warm_start_type,
    )


def _pipeline_parameters(settings: Settings) -> list[Any]:
    from sagemaker.core.workflow.parameters import ParameterInteger, ParameterString

    return [
        ParameterString(name="InstanceType", default_value=settings.compute.instance_type),
        ParameterInteger(name="InstanceCount", default_value=settings.compute.instance_count),
        ParameterString(name="TrainingImage", default_value=settings.image),
    ]


def build_pipeline(settings: Settings, session: Any) -> Any:
    """A Pipeline with one tuning step; instance type, count and image are pipeline parameters.

    ``session`` must be a ``PipelineSession``: under it the tuner records its request instead of
    sending it. Names are fixed (no random part) so the definition is the same on every build.
    """
    check_objective(settings)
    check_pipeline_settings(settings)
    _import_mlops(settings.region)
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import TuningStep

    instance_type, instance_count, image = _pipeline_parameters(settings)
    trainer = build_trainer(settings, session, image=image, instance_type=instance_type,
                            instance_count=instance_count, base_name=settings.job_prefix)
    tuner = build_tuner(settings, trainer)
    with warnings.catch_warnings():  # "Running within a PipelineSession ... No Job being started": intended
        warnings.simplefilter("ignore", UserWarning)
        step = TuningStep(name="Tune", step_args=tuner.tune(job_name=settings.job_prefix[:TUNING_NAME_MAX]))
    # pipeline_experiment_config=None: the SDK's default makes every execution create a SageMaker
    # Experiments experiment and trial (CreateExperiment, CreateTrial, AssociateTrialComponent as the
    # pipeline role), which nothing here reads: MLflow tracks the runs. The definition then holds
    # "PipelineExperimentConfig": null, and the pipeline role needs no sagemaker:*Experiment* grant.
    return Pipeline(name=settings.pipeline_name, parameters=[instance_type, instance_count, image],
                    steps=[step], sagemaker_session=session, pipeline_experiment_config=None)


def _import_mlops(region: str) -> None:
    """``sagemaker.mlops`` creates a boto3 client when imported, which fails without a region."""
    if not boto3.Session().region_name:
        os.environ["AWS_DEFAULT_REGION"] = region
    import sagemaker.mlops.workflow.pipeline  # noqa: F401


# ---------------------------------------------------------------------------------------------
# Exact requests, for --dry-run and the offline tests (built by the SDK, validated, not sent)


def training_request(settings: Settings, session: boto3.Session | None = None) -> dict[str, Any]:
    """The CreateTrainingJob request ``train`` would send through ``session`` (stopped before sending)."""
    session = session or aws.boto_session(settings.region)
    with aws.capture_request(session, "CreateTrainingJob") as capture:
        aws.submit_training(build_trainer(settings, aws.sdk_session(session)))
    return capture.params


def tuning_request(settings: Settings, job_name: str | None = None,
                   session: boto3.Session | None = None) -> dict[str, Any]:
    """The CreateHyperParameterTuningJob request ``tune`` would send through ``session`` (not sent)."""
    check_objective(settings)
    session = session or aws.boto_session(settings.region)
    with aws.capture_request(session, "CreateHyperParameterTuningJob") as capture:
        tuner = build_tuner(settings, build_trainer(settings, aws.sdk_session(session)))
        aws.submit_tuning(tuner, job_name or tuning_job_name(settings.job_prefix))
    return capture.params


def pipeline_definition(settings: Settings) -> dict[str, Any]:
    """The pipeline definition (as CreatePipeline's ``PipelineDefinition`` carries it, parsed)."""
    session = aws.sdk_session(aws.boto_session(settings.region), pipeline=True)
    return json.loads(build_pipeline(settings, session).definition())
