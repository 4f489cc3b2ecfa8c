"""``serve``: SageMaker's hosting contract, run by the same image that trains.

SageMaker starts an endpoint's container with the argument ``serve``, after unpacking the
model's ``model.tar.gz`` into ``/opt/ml/model``; the container answers ``GET /ping`` (200 when it
can score) and ``POST /invocations`` on port 8080
(https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html).

The server is what the base image already carries for its own XGBoost serving: Flask behind
gunicorn (requirements-base.txt pins both at the image's versions). Each gunicorn worker loads
the model itself; the master never touches XGBoost (a worker forked from a process that has used
XGBoost's OpenMP threads can hang). A model that does not load stops the server at start with
one line (gunicorn exits when a worker cannot boot). Scoring is :mod:`training.model.scoring`: raw rows in, the job's own coding.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
from pathlib import Path
from typing import Any

from training.contract import (
    SERVING_PORT,
    SERVING_PORT_ENV,
    SERVING_TIMEOUT_ENV,
    SERVING_WORKERS_ENV,
    model_dir,
)
from training.model import scoring
from training.model.booster import load
from training.model.explain import EXPLAIN

log = logging.getLogger("container.serve")

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
"""The header that carries ``InvokeEndpoint``'s ``CustomAttributes`` to the container (``explain=K`` asks for
explanations)."""
DEFAULT_TIMEOUT_SECONDS = 60
"""SageMaker ends an invocation after 60 seconds: a worker busy longer than that is restarted."""


def create_app(directory: Path) -> Any:
    """The WSGI app scoring with the model in ``directory`` (loaded now, once per process)."""
    import flask

    booster, plan = load(scoring.model_file(directory))
    # one thread per worker: the workers (one per core by default) are the parallelism; XGBoost's own
    # OpenMP threads in each of them would oversubscribe the cores N-fold
    booster.set_param({"nthread": 1})
    app = flask.Flask(__name__)

    @app.get("/ping")
    def ping() -> Any:
        return flask.Response(status=200)

    @app.post("/invocations")
    def invocations() -> Any:
        request = flask.request
        try:
            explain = scoring.explain_request(request.args.get(EXPLAIN), request.headers.get(CUSTOM_ATTRIBUTES), plan)
            rows = scoring.read_rows(request.get_data(), request.content_type or "", plan)
            body = scoring.predictions_json(booster, plan, rows, explain)
        except scoring.BadRequest as err:
            status = 415 if isinstance(err, scoring.UnsupportedType) else 400
            return flask.Response(f"{err}\n", status=status, mimetype="text/plain")
        return flask.Response(body, status=200, mimetype=scoring.JSON)

    return app


def main(base_dir: Path, environ: dict[str, str]) -> int:
    """Serve the model under ``base_dir`` until SageMaker stops the container; the exit code."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.arbiter import Arbiter

    directory = model_dir(base_dir)
    try:
        path = scoring.model_file(directory)
    except (OSError, ValueError) as err:
        log.error("cannot serve: %s", err)
        return 1
    port = int(environ.get(SERVING_PORT_ENV) or SERVING_PORT)
    workers = int(environ.get(SERVING_WORKERS_ENV) or multiprocessing.cpu_count())
    timeout = int(environ.get(SERVING_TIMEOUT_ENV) or DEFAULT_TIMEOUT_SECONDS)
    log.info("serving %s on port %d with %d workers", path, port, workers)

    class _Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in {"bind": f"0.0.0.0:{port}", "workers": workers, "timeout": timeout,
                               "keepalive": 60, "accesslog": None}.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            try:
                return create_app(directory)
            except (OSError, ValueError) as err:  # gunicorn stops when a worker cannot boot
                log.error("cannot serve %s: %s", path, err)
                sys.exit(Arbiter.WORKER_BOOT_ERROR)

    _Server().run()
    return 0

