"""The project's errors.

A :class:`UserError` is something the user or the platform can fix (a bad secret, a missing
table, a bad hyperparameter): the container turns it into one line in ``output/failure`` and
exit code 1. Anything else is a bug and keeps its traceback.

Messages say what was wrong, what was found (never a secret value) and the fix.
"""


class UserError(Exception):
    """An error the user can act on; its message is one line that names the fix."""

    def __str__(self) -> str:
        # One line, whatever the message was built from: FailureReason shows the first line only.
        return " ".join(super().__str__().split())


class HyperparameterError(UserError):
    """A hyperparameter is unknown, of the wrong type, or out of range."""


class ConfigError(UserError):
    """The job's configuration (environment, /opt/ml files, settings) is incomplete or invalid."""


class CredentialsError(UserError):
    """The Snowflake secret cannot be read or does not hold usable credentials."""


class SnowflakeError(UserError):
    """Snowflake is unreachable, or the table or a column is missing."""


class DataError(UserError):
    """The table's data cannot be trained on (non-numeric or all-NULL columns, no rows)."""


class ClusterError(UserError):
    """The hosts could not form or keep the XGBoost collective."""


class Interrupted(UserError):
    """The job was stopped (SIGTERM, e.g. a spot interruption) after saving a checkpoint."""
