"""A host whose work is done keeps its outcome, whatever signal comes while the process exits."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

HOST = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    from container.entry import _host
    from training.train.checkpoints import StopFlag

    class LateStop:
        # Torn down while Python exits, after it has restored SIGTERM's default action: SageMaker's
        # stop (or a spot interruption) reaching a host that has finished, as one did in CI.
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)

    late = LateStop()
    code = _host(Path(sys.argv[1]), "training", lambda: StopFlag().install(), lambda message: None)
    print("outcome", code, flush=True)
    sys.exit(code)
""")


def test_a_stop_signal_after_the_work_is_done_leaves_a_succeeded_host_succeeded(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", HOST, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert "outcome 0" in done.stdout, done.stderr
    assert done.returncode == 0, f"the host died of the late signal (exit {done.returncode}): {done.stderr[-2000:]}"
