"""Checkpoints that survive interruptions, and a clean stop on SIGTERM (e.g. spot interruption).

The leader writes ``xgboost-checkpoint.<rounds>`` atomically (temp file, then rename) into the
checkpoint directory SageMaker syncs to S3, keeping the newest few. On start the leader finds the
newest and broadcasts it, so every host resumes from the same model whether or not it has the
file, and training ends with the configured total number of rounds.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
from pathlib import Path

import xgboost as xgb

from training.collective.cluster import Cluster, from_leader
from training.errors import ConfigError

log = logging.getLogger(__name__)

PREFIX = "xgboost-checkpoint."
KEEP = 5
_NAME = re.compile(re.escape(PREFIX) + r"(\d+)$")


def list_checkpoints(directory: Path | None) -> list[tuple[int, Path]]:
    """Checkpoints in ``directory`` as (rounds done, path), oldest first."""
    if directory is None or not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def write_model(booster: xgb.Booster, path: Path) -> Path:
    """Write ``booster`` in XGBoost's UBJSON format atomically (temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(booster.save_raw("ubj"))
    os.replace(temp, path)
    return path


def save_checkpoint(booster: xgb.Booster, directory: Path, rounds: int, keep: int = KEEP) -> Path:
    """Write the model after ``rounds`` rounds atomically; delete all but the newest ``keep``."""
    path = write_model(booster, directory / f"{PREFIX}{rounds}")
    for _, old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def resume_point(directory: Path | None, cluster: Cluster) -> tuple[int, bytes | None]:
    """(rounds already done, model bytes) from the leader's newest checkpoint, on every host.

    Only the leader reads (a checkpoint may exist on its disk alone); a failure to read it fails
    every host at once with the leader's error.
    """
    rounds, model = from_leader(lambda: _newest(directory), cluster, "checkpoint: resume point")
    if rounds:
        log.info("resuming from checkpoint after round %d", rounds)
    return rounds, model


def _newest(directory: Path | None) -> tuple[int, bytes | None]:
    checkpoints = list_checkpoints(directory)
    if not checkpoints:
        return 0, None
    rounds, path = checkpoints[-1]
    try:
        return rounds, path.read_bytes()
    except OSError as err:
        raise ConfigError(f"the checkpoint {path.name} in {directory} cannot be read ({err.strerror or err}): "
                          "fix it or remove it, or restart the job with an empty checkpoint location to train "
                          "afresh") from None


class StopFlag:
    """Set by SIGTERM; the training loop checks it each round and stops cleanly.

    Each host reads only its own flag; :class:`training.train.rounds.RoundOwner` all-reduces every
    host's flag each round, so all hosts stop after the same round even though the signal reaches
    them at different moments (or only one of them).
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def install(self) -> None:
        """Handle SIGTERM (SageMaker's stop and spot interruption signal) by setting the flag."""
        signal.signal(signal.SIGTERM, lambda signum, frame: self.set())
