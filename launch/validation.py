"""How a settings value is checked, and how a failed check reads.

The settings models (:mod:`launch.settings`) are pydantic models in strict mode: a TOML value is
taken as it is (``"2"`` is not an integer, ``1`` is not ``true``). The checks here are typed
``Annotated`` metadata (:func:`between`, :func:`matching`, :func:`one_of`, ...), so a misspelt
check is a ``NameError`` at import, not a check that silently passes.

Each failure becomes one line, the same for every key: ``settings key 'compute.instance_count'
must be an integer in [1, 100], got 0: fix its value`` -- the key, what was expected, what was
found and the fix. :func:`config_error` turns pydantic's :class:`ValidationError` (which lists
every failure, in pydantic's words) into that one :class:`ConfigError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, PlainValidator, ValidationError, ValidationInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from training.errors import ConfigError
from training.hyperparameters import SPECS

EXAMPLE = Path(__file__).with_name("settings.example.toml")
"""The committed, commented template."""

FIX = "fix its value"
"""The fix when the expected value says it all."""

T = TypeVar("T")

_TYPE_NAMES = {"bool_type": "true or false", "int_type": "an integer", "string_type": "a string"}
"""pydantic's strict type errors, in our words."""


def show(value: Any) -> str:
    """A value as a message shows it: its repr, cut short."""
    return repr(value)[:60]


def invalid(expected: str, value: Any, fix: str = FIX, *, hide: bool = False) -> PydanticCustomError:
    """The failure "must be ``expected``, got ``value``: ``fix``" of the key being checked.

    ``hide``: leave the value out (it may be a secret pasted where its id belongs).
    """
    found = None if hide else show(value)
    return PydanticCustomError("settings_value", "{expected}", {"expected": expected, "found": found, "fix": fix})


def refused(line: str) -> PydanticCustomError:
    """A failure whose whole line is already written (rules between keys, tables of names)."""
    return PydanticCustomError("settings_line", "{line}", {"line": line})


# ---------------------------------------------------------------------------------------------
# Field types: strict TOML types plus one typed check each


def _strip(value: str) -> str:
    return value.strip()


Text = Annotated[str, AfterValidator(_strip)]
"""A string, surrounding blanks removed."""


def between(low: int, high: int | None = None) -> AfterValidator:
    """An integer in [low, high] (no upper bound when ``high`` is None)."""
    def check(value: int) -> int:
        if value < low or (high is not None and value > high):
            raise invalid(f"an integer in [{low}, {'inf' if high is None else high}]", value)
        return value
    return AfterValidator(check)


def one_of(*choices: str) -> AfterValidator:
    """One of the given strings."""
    def check(value: str) -> str:
        if value not in choices:
            raise invalid("one of " + ", ".join(choices), value)
        return value
    return AfterValidator(check)


def matching(pattern: str, *, empty_ok: bool = False) -> AfterValidator:
    """A string matching ``pattern`` (or empty, with ``empty_ok``); the message names the field's help."""
    def check(value: str) -> str:
        if not (empty_ok and not value) and not re.match(pattern, value):
            raise PydanticCustomError("settings_pattern", "must match {pattern}",
                                      {"pattern": pattern, "found": show(value)})
        return value
    return AfterValidator(check)


def _string_list(value: Any, info: ValidationInfo) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise invalid("a list of strings", value, f'write e.g. {info.field_name} = ["a", "b"]')
    return tuple(value)


StringList = Annotated[tuple[str, ...], PlainValidator(_string_list)]
"""A list of strings; on the command line also a comma list (``--set data.features=A,B``)."""


def ids_matching(pattern: str) -> AfterValidator:
    """A list whose every item matches ``pattern`` (subnet and security group ids)."""
    def check(value: tuple[str, ...]) -> tuple[str, ...]:
        if not all(re.match(pattern, item) for item in value):
            raise invalid(f"a list of ids matching {pattern}", value)
        return value
    return AfterValidator(check)


def validated_by(check: Callable[[Any], T]) -> PlainValidator:
    """A field that ``check`` validates whole, raising :class:`ConfigError` with its own line."""
    def validate(value: Any) -> T:
        try:
            return check(value)
        except ConfigError as err:
            raise refused(str(err)) from None
    return PlainValidator(validate)


# ---------------------------------------------------------------------------------------------
# AWS values: role ARNs, secret ids, tags, hyperparameters as SageMaker passes them

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")


def _role_arn(value: str) -> str:
    if not ROLE_ARN.match(value):
        raise invalid("an IAM role ARN like arn:aws:iam::123456789012:role/NAME", value,
                      "copy the role's ARN from the IAM console")
    return value


def _role_arn_or_empty(value: str) -> str:
    return _role_arn(value) if value else value


RoleArn = Annotated[Text, AfterValidator(_role_arn)]
"""An IAM role's ARN."""

RoleArnOrEmpty = Annotated[Text, AfterValidator(_role_arn_or_empty)]
"""An IAM role's ARN, or empty for a default."""


def _secret_id(value: Any) -> str:
    """An id, never a value: the value is not repeated in the message."""
    secret_id = value.strip() if isinstance(value, str) else ""
    if not secret_id or secret_id.startswith("{") or any(c.isspace() for c in secret_id):
        raise invalid("a Secrets Manager secret id or ARN (never the secret's value)", value,
                      "put the secret's name or ARN there", hide=True)
    return secret_id


SecretId = Annotated[str, PlainValidator(_secret_id)]
"""A Secrets Manager secret id or ARN, never the secret itself."""

SecretIdOrEmpty = Annotated[str, PlainValidator(lambda value: "" if value == "" else _secret_id(value))]
"""A secret id or ARN, or empty (workload identity needs none)."""


def _tags(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str | int | float) for v in value.values()):
        raise ConfigError(f"settings [tags] must map tag keys to strings, got {show(value)}: write e.g. team = \"ml\"")
    tags = {str(k): str(v) for k, v in value.items()}
    for tag_key, tag_value in tags.items():
        if not 1 <= len(tag_key) <= 128 or len(tag_value) > 256 or tag_key.lower().startswith("aws:"):
            raise ConfigError(f"settings tag {tag_key!r} is not a valid tag (key 1-128 chars, not 'aws:', "
                              f"value <= 256 chars): rename or shorten it")
    return tags


Tags = Annotated[dict[str, str], validated_by(_tags)]
"""AWS resource tags: key 1-128 characters, not ``aws:``; value at most 256."""


def hyperparameter_string(value: Any) -> str:
    """SageMaker passes every hyperparameter as a string; lists become comma lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(hyperparameter_string(v) for v in value)
    return str(value)


# ---------------------------------------------------------------------------------------------
# pydantic's ValidationError -> one ConfigError line


def config_error(err: ValidationError, root: type[BaseModel], source: str,
                 overridden: frozenset[str] = frozenset()) -> ConfigError:
    """The one line for the first failure, in the order the file reads (unknown keys of a section first);
    a key that ``--set`` gave (``overridden``) is said to come from ``--set``, not from ``source``."""
    first = min(err.errors(), key=lambda e: _reading_order(root, e["loc"]))
    key = ".".join(str(part) for part in first["loc"])
    return ConfigError(_line(first, root, "--set" if key in overridden else source))


def _line(error: ErrorDetails, root: type[BaseModel], source: str) -> str:
    loc = [str(part) for part in error["loc"]]
    key, kind, ctx = ".".join(loc), error["type"], error.get("ctx") or {}
    if kind == "settings_line":
        return ctx["line"]
    if kind == "extra_forbidden":
        if len(loc) == 1 and key in SPECS:  # a hyperparameter at the top: say where it goes
            return (f"unknown settings key {key!r} {_given(source)}: hyperparameters are set under [hyperparameters] "
                    f"(on the command line: --set hyperparameters.{key}=...)")
        allowed = ", ".join(_keys(_model_at(root, loc[:-1]), loc[:-1]))
        return f"unknown settings key {key!r} {_given(source)}: remove it or use one of {allowed}"
    if kind == "missing":
        return _missing(root, loc, source)
    if kind == "model_type":
        return f"settings key {key!r} must be a [{key}] section, got {show(error['input'])}: make it a table"
    if kind == "settings_pattern":
        expected = f"{_help(root, loc)} matching {ctx['pattern']}"
        return f"settings key {key!r} must be {expected}, got {ctx['found']}: {FIX}"
    if kind == "settings_value":
        got = "" if ctx["found"] is None else f", got {ctx['found']}"
        return f"settings key {key!r} must be {ctx['expected']}{got}: {ctx['fix']}"
    expected = _TYPE_NAMES.get(kind, error["msg"])
    return f"settings key {key!r} must be {expected}, got {show(error['input'])}: {FIX}"


def _given(source: str) -> str:
    return "given by --set" if source == "--set" else f"in {source}"


def _missing(root: type[BaseModel], loc: Sequence[str], source: str) -> str:
    key = ".".join(loc)
    if _model_at(root, loc) is not None:
        return f"settings section [{key}] is missing in {source}: add it (see {EXAMPLE.name})"
    return f"settings key {key!r} ({_help(root, loc)}) is missing in {source}: set it (see {EXAMPLE.name})"


def _model_at(root: type[BaseModel], loc: Sequence[str]) -> type[BaseModel] | None:
    """The section model at ``loc`` (``()``: the root), or None where ``loc`` is a value."""
    model: type[BaseModel] = root
    for part in loc:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _keys(model: type[BaseModel] | None, loc: Sequence[str]) -> list[str]:
    prefix = "".join(f"{part}." for part in loc)
    return [prefix + name for name in (model.model_fields if model else ())]


def _help(root: type[BaseModel], loc: Sequence[str]) -> str:
    model = _model_at(root, loc[:-1])
    field = model.model_fields.get(loc[-1]) if model else None
    return (field.description or "") if field else ""


def _reading_order(root: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[Any, ...]:
    """Sort key: a section's unknown keys (-1, by name) before its fields (in declaration order)."""
    order: list[Any] = []
    model: type[BaseModel] | None = root
    for part in loc:
        names = list(model.model_fields) if model else []
        if str(part) not in names:
            return (*order, -1, str(part))
        order.append(names.index(str(part)))
        model = _model_at(model, [str(part)]) if model else None
    return tuple(order)
