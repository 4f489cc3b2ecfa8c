"""What SageMaker's API accepts, read from botocore's service model rather than written again here.

botocore validates a request's types and required members before sending it, but not its enums
(an instance type), nor the upper bounds of lists and numbers (at most 40 metric definitions):
those come back from the service as a ValidationException after the launch. The settings check
the values a user types (:func:`instance_types`, :func:`maximum`) with a line that names the key;
:func:`check_request` walks a whole request against the same model, so that nothing the service
would refuse that way leaves the laptop, even a value no settings key names (``--dry-run`` runs
it too).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import botocore
import botocore.session

from training.errors import ConfigError

TRAINING_INSTANCE_TYPE = "TrainingInstanceType"
HOSTING_INSTANCE_TYPE = "ProductionVariantInstanceType"


@functools.cache
def _model() -> Any:
    return botocore.session.get_session().get_service_model("sagemaker")


def enum(shape: str) -> tuple[str, ...]:
    """The values the shape ``shape`` allows (``TrainingInstanceType``: every training instance type)."""
    return tuple(_model().shape_for(shape).enum)


def maximum(shape: str, member: str) -> int:
    """The largest value (a number) or length (a list) of ``shape``'s ``member``."""
    return int(_model().shape_for(shape).members[member].metadata["max"])


def minimum(shape: str) -> int:
    """The smallest value of the number shape ``shape``."""
    return int(_model().shape_for(shape).metadata["min"])


def instance_types(kind: str) -> tuple[str, ...]:
    """The instance types SageMaker lists for ``kind`` (:data:`TRAINING_INSTANCE_TYPE` or :data:`HOSTING_INSTANCE_TYPE`)."""
    return enum(kind)


def unknown_instance_type(what: str, value: str, kind: str) -> str | None:
    """The one line refusing ``value`` given as ``what`` (``settings key 'compute.instance_type'``,
    ``--instance-type``) if SageMaker does not list it for ``kind``, else None."""
    import difflib

    known = instance_types(kind)
    if value in known:
        return None
    near = difflib.get_close_matches(value, known, n=3, cutoff=0.6)
    use = "training" if kind == TRAINING_INSTANCE_TYPE else "hosting"
    hint = f"did you mean {' or '.join(near)}?" if near else f"e.g. {known[0]}"
    return (f"{what} is {value!r}, which is not a SageMaker {use} instance type ({hint}); the list is botocore "
            f"{botocore.__version__}'s: a newer type needs a newer boto3")


def check_request(operation: str, params: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` with one line if ``params`` break a limit of ``operation``'s input that
    botocore does not check itself: an enum, a maximum length or a maximum value."""
    shape = _model().operation_model(operation).input_shape
    problem = _first_problem(shape, params, operation)
    if problem:
        raise ConfigError(f"SageMaker would refuse this {operation} request: {problem}; fix the setting behind it")


def _first_problem(shape: Any, value: Any, path: str) -> str | None:
    if value is None:
        return None
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure" and isinstance(value, Mapping):
        for name, member in shape.members.items():
            if name in value:
                problem = _first_problem(member, value[name], f"{path}.{name}")
                if problem:
                    return problem
        return None
    if kind == "list" and isinstance(value, (list, tuple)):
        if "max" in meta and len(value) > meta["max"]:
            return f"{path} has {len(value)} entries and SageMaker accepts at most {meta['max']}"
        for i, item in enumerate(value):
            problem = _first_problem(shape.member, item, f"{path}[{i}]")
            if problem:
                return problem
        return None
    if kind == "map" and isinstance(value, Mapping):
        if "max" in meta and len(value) > meta["max"]:
            return f"{path} has {len(value)} entries and SageMaker accepts at most {meta['max']}"
        for key, item in value.items():
            problem = _first_problem(shape.value, item, f"{path}[{key!r}]")
            if problem:
                return problem
        return None
    if kind == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            return f"{path} is {value!r}, not one of the values SageMaker lists for {shape.name}"
        if "max" in meta and len(value) > meta["max"]:
            return f"{path} is {len(value):,} characters and SageMaker accepts at most {meta['max']:,}"
        return None
    if kind in ("integer", "long", "float", "double") and isinstance(value, (int, float)) and not isinstance(value, bool):
        if "max" in meta and value > meta["max"]:
            return f"{path} is {value} and SageMaker accepts at most {meta['max']}"
    return None


def install(session: Any) -> None:
    """Check every SageMaker request made through the boto3 ``session`` with :func:`check_request`,
    before it is sent (and before a ``--dry-run`` capture stops it)."""
    def _check(params: dict[str, Any], model: Any, **_: Any) -> None:
        check_request(model.name, params)

    session.events.register("provide-client-params.sagemaker", _check, unique_id="launch-service-model-check")
