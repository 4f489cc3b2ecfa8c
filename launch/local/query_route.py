"""fakesnow's query endpoint, wrapped: how the local Snowflake's patches rewrite a statement before fakesnow runs it.

The connector posts every statement to :data:`~launch.local.result_chunks.QUERY_ROUTE` as JSON
(gzipped or not). :func:`wrap` puts a ``rewrite`` in front of fakesnow's own handler: it sees the
request and the decoded body, may change the body (``sqlText``, ``bindings``) and says whether it
did; fakesnow then runs what it was given. A statement Snowflake would refuse raises
:class:`Refused`, which answers as Snowflake answers (its code, SQL state and message), without
fakesnow. Used by :mod:`launch.local.time_travel` and :mod:`launch.local.write_back`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Awaitable, Callable
from typing import Any

from launch.local.result_chunks import QUERY_ROUTE


class Refused(Exception):
    """A statement Snowflake would refuse: the code, SQL state and message it answers with."""

    def __init__(self, code: str, message: str, sqlstate: str = "42S02") -> None:
        super().__init__(message)
        self.code, self.message, self.sqlstate = code, message, sqlstate


Rewrite = Callable[[Any, dict[str, Any]], Awaitable[bool]]
"""``rewrite(request, body)``: change ``body`` in place and return True, or return False to pass it on as it came."""


def wrap(app: Any, rewrite: Rewrite) -> None:
    """Put ``rewrite`` in front of the query endpoint of fakesnow's server ``app`` (Starlette)."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    routes = app.router.routes
    index = next(i for i, r in enumerate(routes) if getattr(r, "path", None) == QUERY_ROUTE)
    original: Callable[[Request], Awaitable[Response]] = routes[index].endpoint

    async def query_request(request: Request) -> Response:
        raw = await request.body()
        zipped = request.headers.get("Content-Encoding") == "gzip"
        body = json.loads(gzip.decompress(raw) if zipped else raw)
        try:
            if not await rewrite(request, body):
                return await original(request)
        except Refused as err:
            return JSONResponse({"data": {"errorCode": err.code, "sqlState": err.sqlstate}, "code": err.code,
                                 "message": err.message, "success": False})
        text = json.dumps(body).encode()
        payload = gzip.compress(text) if zipped else text

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": payload, "more_body": False}

        return await original(Request(request.scope, receive))

    routes[index] = Route(QUERY_ROUTE, query_request, methods=["POST"])
