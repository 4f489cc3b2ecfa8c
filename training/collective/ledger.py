"""The collective ledger: every collective call a host makes, in order, so the hosts can be compared.

Every host of a job must make the same collective calls in the same order: the collective pairs
the n-th call of one host with the n-th call of every other, and two calls of the same dtype and
shape pair without an error even when they mean different things (XGBoost 3.0 runs its callbacks
in no fixed order, so two callbacks that each all-reduce pair wrongly on some hosts). The ledger
records each call: sequence number, call site, operation, dtype and shape. It is kept by
:mod:`training.collective.cluster`, through which every collective call of the job goes (XGBoost's own
Python-side metric all-reduce included).

Always on, in memory: the last few calls, which a host names when the collective breaks, and a
running digest that each host logs when it leaves the collective (equal digests, equal calls).
With a directory (the ``COLLECTIVE_LEDGER`` environment variable), each host also writes every
call as one line to ``<dir>/<host>.ledger``; :func:`compare_ledgers` then names the first call
where the hosts differ. The local mode does this after every multi-host job.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

LEDGER_SUFFIX = ".ledger"
RECENT = 5
"""How many of its last calls a host names when the collective breaks."""


def ledger_path(directory: Path, host: str) -> Path:
    """The ledger file of ``host`` in ``directory``."""
    return directory / f"{host}{LEDGER_SUFFIX}"


class Ledger:
    """One host's collective calls (see the module docstring); one line per call when it has a file."""

    def __init__(self, path: Path | None = None) -> None:
        self.calls = 0
        self.recent: deque[str] = deque(maxlen=RECENT)
        self._digest = hashlib.blake2b(digest_size=8)
        self._file: IO[str] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "w", buffering=1)  # noqa: SIM115  line-buffered: a hung host's file is current

    def record(self, site: str, op: str, dtype: str, shape: str) -> None:
        """Note one call before it is made (a call that never returns is the last line)."""
        self.calls += 1
        entry = f"{site}\t{op}\t{dtype}\t{shape}"
        self.recent.append(f"#{self.calls} {entry.replace(chr(9), ' ')}")
        self._digest.update(entry.encode())
        if self._file is not None:
            self._file.write(f"{self.calls}\t{entry}\n")

    @property
    def digest(self) -> str:
        return self._digest.hexdigest()

    def last_calls(self) -> str:
        """The last few calls, oldest first, for a message: ``#41 round allreduce:max int32 (3,); ...``."""
        return "; ".join(self.recent) if self.recent else "none"

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_ledger(path: Path) -> list[str]:
    """A ledger file's calls, each as ``site<TAB>op<TAB>dtype<TAB>shape`` (the sequence number dropped)."""
    return [line.split("\t", 1)[1] for line in path.read_text().splitlines() if "\t" in line]


def compare_ledgers(ledgers: Mapping[str, Sequence[str]], complete: bool) -> str | None:
    """None if the hosts made the same calls, else one line naming the first call where they differ.

    ``complete``: the job succeeded, so every host must have made every call. Otherwise a host
    that failed stopped early and the others waited in a call it never made: only the calls every
    host made are compared.
    """
    hosts = list(ledgers)
    if len(hosts) < 2:
        return None
    shortest = min(len(calls) for calls in ledgers.values())
    for index in range(shortest):
        if len({ledgers[host][index] for host in hosts}) > 1:
            made = "; ".join(f"{host} made {_shown(ledgers[host][index])}" for host in hosts)
            return f"the hosts' collective calls differ at call #{index + 1}: {made}"
    if complete and len({len(calls) for calls in ledgers.values()}) > 1:
        counts = ", ".join(f"{host} {len(ledgers[host]):,}" for host in hosts)
        first = min(hosts, key=lambda host: len(ledgers[host]))
        extra = next(host for host in hosts if len(ledgers[host]) > shortest)
        return (f"the hosts made different numbers of collective calls ({counts}): after call #{shortest}, "
                f"{extra} made {_shown(ledgers[extra][shortest])} and {first} none")
    return None


def compare_ledger_files(directory: Path, hosts: Sequence[str], complete: bool) -> str | None:
    """:func:`compare_ledgers` over the hosts' files in ``directory``; a host without a file made no call."""
    ledgers = {}
    for host in hosts:
        path = ledger_path(directory, host)
        ledgers[host] = read_ledger(path) if path.exists() else []
    return compare_ledgers(ledgers, complete)


def _shown(entry: str) -> str:
    return "'" + entry.replace("\t", " ") + "'"
