"""What a scoring job is told (its ``hyperparameters.json``), read once and checked before any work."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from training.errors import ConfigError, HyperparameterError
from training.read import names
from training.read.names import stored_name
from training.read.snowflake import quote_table

DEFAULTS = {"key_columns": "", "batch_rows": "100000", "fetch_threads": "4", "tracker_port": "9099",
            "collective_timeout": "600", "model_name": "", "model_version": "", "run_id": "",
            "query_tag": "sagemaker-xgboost-score", "explain": "0"}
REQUIRED = ("source_table", "target_table")


@dataclass(frozen=True)
class ScoreOptions:
    """The source and target tables (quoted SQL), the key columns carried through, and how to read and write."""

    source_sql: str
    target_sql: str
    keys: tuple[str, ...]
    """Key columns as Snowflake stores their names."""
    batch_rows: int
    fetch_threads: int
    tracker_port: int
    collective_timeout: int
    model_name: str
    model_version: str
    run_id: str
    query_tag: str
    explain: int = 0
    """How many SHAP contributions to write per row (0: none); at most the model's feature count, checked
    against the model as the job starts."""

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> ScoreOptions:
        """``raw`` (strings, as SageMaker passes hyperparameters); a :class:`ConfigError` names the key and the fix."""
        given = {k: str(v) for k, v in raw.items() if not k.startswith(("sagemaker_", "_"))}
        unknown = sorted(set(given) - set(DEFAULTS) - set(REQUIRED))
        if unknown:
            raise ConfigError(f"unknown scoring setting {unknown[0]!r}: use one of "
                              f"{', '.join(sorted((*REQUIRED, *DEFAULTS)))}")
        missing = [key for key in REQUIRED if not given.get(key, "").strip()]
        if missing:
            raise ConfigError(f"scoring setting {missing[0]!r} is required: name the Snowflake table "
                              f"({'to score' if missing[0] == 'source_table' else 'to write the predictions to'})")
        values = {**DEFAULTS, **given}
        try:
            source, target = quote_table(values["source_table"]), quote_table(values["target_table"])
            keys = tuple(stored_name(n) for n in names.split_names(values["key_columns"])) if values["key_columns"] \
                else ()
        except HyperparameterError as err:
            raise ConfigError(f"scoring settings: {err}") from None
        if len(set(keys)) != len(keys):
            raise ConfigError(f"key_columns {values['key_columns']!r} names a column twice: name each key once")
        if source == target:
            raise ConfigError(f"target_table {values['target_table']!r} is the source table: write the predictions "
                              "to another table")
        return cls(source, target, keys, _whole(values, "batch_rows", 1_000), _whole(values, "fetch_threads", 1),
                   _whole(values, "tracker_port", 1), _whole(values, "collective_timeout", 10),
                   values["model_name"], values["model_version"], values["run_id"], values["query_tag"],
                   _whole(values, "explain", 0))


def _whole(values: Mapping[str, str], key: str, low: int) -> int:
    try:
        number = int(values[key])
    except ValueError:
        number = low - 1
    if number < low:
        raise ConfigError(f"scoring setting {key!r} must be a whole number, at least {low}: fix its value")
    return number
