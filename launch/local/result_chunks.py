"""Query results in chunks, as Snowflake sends them: the first rows inline, the rest downloaded.

fakesnow's server answers every query with one inline Arrow batch. Snowflake answers a large
result with a small inline part (``rowsetBase64``) and a ``chunks`` list (``url``, ``rowCount``,
``uncompressedSize``, ``compressedSize``) plus ``qrmk``, the key the connector sends back as an
SSE-C header; the unmodified connector then downloads each chunk with a plain GET (an Arrow IPC
stream with its own schema, gzip-encoded), ``client_prefetch_threads`` at a time, retrying 403s,
5xx and resets. :func:`install` makes the local server answer the same way, so
``fetch_arrow_batches()``, ``fetch_pandas_all()`` and ``get_result_batches()`` see what they see
against Snowflake (the connector's side: ``snowflake/connector/result_batch.py``).

Chunk sizes grow geometrically up to a cap, as Snowflake's do (it roughly doubles them), scaled
down so that a 1M-row table gives tens of chunks; :class:`ChunkSizes` sets them, from the
``LOCAL_SNOWFLAKE_*`` environment variables the local stack passes to the server process.

A result is re-opened by query id as on Snowflake: ``SELECT * FROM TABLE(RESULT_SCAN('<id>'))``
answers fakesnow's cached result (the rows as the query saw them, whatever changed since), cut
into chunks with new URLs like any other answer (tested with the connector).

It also keeps a log of the statements it was sent (:class:`QueryLog`, ``GET /local/queries``), so
a benchmark or a test counts a job's warehouse queries where the warehouse would, not in our code.

What it still does not do: chunks live in this process's memory (bounded, oldest evicted; fakesnow
keeps every result anyway), expire after ``ttl_s`` rather than with a signed URL's clock; a result
never expires for ``RESULT_SCAN`` (Snowflake keeps it 24 hours), any other projection of
``RESULT_SCAN`` (``COUNT(*)``, a column list) still answers the whole result, and an async query's
``GET /queries/{id}/result`` is not served.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import pyarrow as pa

SSE_C_KEY_HEADER = "x-amz-server-side-encryption-customer-key"
"""Where the connector sends ``qrmk`` back with each chunk GET (as to S3 with SSE-C)."""
ENV_PREFIX = "LOCAL_SNOWFLAKE_"
QUERY_ROUTE = "/queries/v1/query-request"
CHUNK_ROUTE = "/results/{query_id}/{name}"
QUERY_LOG_ROUTE = "/local/queries"
"""The stand-in's own route: the statements it was sent (``?since=N``: from the N-th on)."""


@dataclass(frozen=True)
class ChunkSizes:
    """How the local Snowflake cuts a result; every field is also ``LOCAL_SNOWFLAKE_<FIELD>``."""

    inline_rows: int = 1_000
    """Rows sent inline; a result of at most this many rows is one batch."""
    first_chunk_rows: int = 500
    growth: float = 2.0
    """Each chunk is this many times the previous one, up to the caps."""
    max_chunk_rows: int = 50_000
    max_chunk_bytes: int = 16 * 2**20
    """Uncompressed bytes per chunk at most (Snowflake's ``CLIENT_RESULT_CHUNK_SIZE`` is 16-160 MB)."""
    ttl_s: float = 6 * 3600.0
    """A chunk's URL answers 403 after this long, as Snowflake's expire after about 6 hours."""
    store_bytes: int = 2 * 2**30
    """Compressed chunks kept at most; the oldest are evicted (their URLs then answer 403)."""
    faults: str = ""
    """Faults for tests, comma-separated: the first GET of a result's i-th chunk answers fault
    ``i mod len(faults)``, later GETs the chunk. A fault is an HTTP status (``403``: as an expired
    URL), ``reset`` (the headers, then the connection drops) or ``truncate`` (half the body, then
    the connection drops)."""

    def to_env(self) -> dict[str, str]:
        return {f"{ENV_PREFIX}{f.name.upper()}": str(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ChunkSizes:
        values = {f.name: type(getattr(cls, f.name))(environ[key]) for f in fields(cls)
                  if (key := f"{ENV_PREFIX}{f.name.upper()}") in environ}
        return cls(**values)

    def plan(self, total: int, row_bytes: float) -> tuple[int, list[int]]:
        """``(inline rows, rows of each chunk)`` for a result of ``total`` rows."""
        if total <= self.inline_rows:
            return total, []
        cap = max(1, min(self.max_chunk_rows, int(self.max_chunk_bytes / max(row_bytes, 1.0))))
        sizes, left, size = [], total - self.inline_rows, float(self.first_chunk_rows)
        while left > 0:
            rows = min(left, max(1, min(cap, int(size))))
            sizes.append(rows)
            left -= rows
            size *= self.growth
        return self.inline_rows, sizes


class ChunkStore:
    """Gzipped chunks by their URL's signature: expiring, bounded, with a GET count per chunk."""

    def __init__(self, sizes: ChunkSizes) -> None:
        self.sizes = sizes
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[str, bytes, float]] = OrderedDict()
        self._bytes = 0
        self.gets: dict[str, int] = {}

    def put(self, signature: str, key: str, body: bytes) -> None:
        with self._lock:
            self._items[signature] = (key, body, time.monotonic() + self.sizes.ttl_s)
            self._bytes += len(body)
            while self._bytes > self.sizes.store_bytes and self._items:
                gone, (_, evicted, _) = self._items.popitem(last=False)
                self._bytes -= len(evicted)
                self.gets.pop(gone, None)

    def get(self, signature: str, key: str) -> bytes | None:
        """The chunk, if the signature is live and ``key`` is its key; counts the GET."""
        with self._lock:
            item = self._items.get(signature)
            if item is None or item[2] < time.monotonic() or not secrets.compare_digest(key, item[0]):
                return None
            self.gets[signature] = self.gets.get(signature, 0) + 1
            return item[1]


class QueryLog:
    """The statements the server was sent, in order: verb, text and result batches. The connector binds
    values client-side, so the text holds them (the stand-in's data only; it is a test log).

    Kept for counting (a job's warehouse queries), bounded to the last ``keep`` entries; each entry
    has its sequence number, so a reader asks for what came after its last look.
    """

    def __init__(self, keep: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=keep)
        self.count = 0

    def add(self, sql: str, answer: dict[str, Any]) -> None:
        text = re.sub(r"\s+", " ", sql).strip()
        with self._lock:
            self._entries.append({"seq": self.count, "verb": text.split(" ", 1)[0].upper(), "sql": text[:500],
                                  **answer})
            self.count += 1

    def since(self, seq: int) -> dict[str, Any]:
        with self._lock:
            return {"next": self.count, "queries": [e for e in self._entries if e["seq"] >= seq]}


def answer_shape(raw: bytes) -> dict[str, Any]:
    """What a query response returned: its status, rows and each batch's rows (inline part first)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return {"success": False}
    data = body.get("data") or {}
    shape: dict[str, Any] = {"success": bool(body.get("success"))}
    if data.get("rowsetBase64") or data.get("chunks"):
        shape["rows"] = data.get("total")
        shape["batches"] = [data.get("returned", data.get("total")), *(c["rowCount"] for c in data.get("chunks", []))]
    return shape


def _sql_text(raw: bytes, encoding: str | None) -> str:
    try:
        return str(json.loads(gzip.decompress(raw) if encoding == "gzip" else raw).get("sqlText", ""))
    except (ValueError, OSError):
        return ""


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:  # each chunk carries its own schema
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def split_result(data: dict[str, Any], base_url: str, store: ChunkStore) -> None:
    """Rewrite a query response's ``data`` in place: the first rows inline, the rest as chunks."""
    table = pa.ipc.open_stream(base64.b64decode(data["rowsetBase64"])).read_all()
    inline, sizes = store.sizes.plan(table.num_rows, table.nbytes / max(table.num_rows, 1))
    if not sizes:
        return
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    query_id, chunks, offset = data.get("queryId") or secrets.token_hex(8), [], inline
    for i, rows in enumerate(sizes):
        raw = _ipc(table.slice(offset, rows))
        body = gzip.compress(raw, compresslevel=1)
        signature = secrets.token_urlsafe(24)
        store.put(signature, key, body)
        chunks.append({"url": f"{base_url}/results/{query_id}/data_0_0_{i}?sig={signature}", "rowCount": rows,
                       "uncompressedSize": len(raw), "compressedSize": len(body)})
        offset += rows
    data.update(rowsetBase64=base64.b64encode(_ipc(table.slice(0, inline))).decode(), returned=inline,
                total=table.num_rows, chunks=chunks, qrmk=key)


def _chunked(body: dict[str, Any], sizes: ChunkSizes) -> bool:
    data = body.get("data") or {}
    return bool(body.get("success") and data.get("queryResultFormat") == "arrow" and data.get("rowsetBase64")
                and "chunks" not in data and (data.get("total") or 0) > sizes.inline_rows)


def chunked_body(raw: bytes, base_url: str, store: ChunkStore) -> bytes | None:
    """A query response's JSON rewritten with chunks, or None when it stays as it is (small, DML, error)."""
    body = json.loads(raw)
    if not _chunked(body, store.sizes):
        return None
    split_result(body["data"], base_url, store)
    return json.dumps(body).encode()


class DroppedConnection(Exception):
    """Raised mid-response: the server closes the connection before the promised body is sent."""


def _fault(faults: str, chunk: int, get: int) -> str:
    """The fault the ``get``-th GET (from 1) of chunk ``chunk`` answers, or '' for the chunk itself."""
    listed = [f.strip() for f in faults.split(",") if f.strip()]
    if any(not (f.isdigit() or f in ("reset", "truncate")) for f in listed):
        raise ValueError(f"unknown chunk fault in {faults!r}: use HTTP statuses, reset or truncate")
    return listed[chunk % len(listed)] if listed and get == 1 else ""


async def _dropped(sent: bytes) -> Any:
    if sent:
        yield sent
    raise DroppedConnection("connection dropped on purpose (a chunk fault for tests)")


class _HideChunkUrls(logging.Filter):
    """The access log must not print chunk URLs: their signature is a bearer credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "/results/" not in record.getMessage()


def install(app: Any, sizes: ChunkSizes) -> ChunkStore:
    """Make fakesnow's server ``app`` (Starlette) answer large results in chunks, serve them, log statements."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    store, queries = ChunkStore(sizes), QueryLog()
    routes = app.router.routes
    index = next(i for i, r in enumerate(routes) if getattr(r, "path", None) == QUERY_ROUTE)
    original = routes[index].endpoint

    async def query_request(request: Request) -> Response:
        sql = _sql_text(await request.body(), request.headers.get("Content-Encoding"))  # Starlette keeps the body
        response = await original(request)
        if response.status_code != 200:
            queries.add(sql, {"success": False, "status": response.status_code})
            return response
        # Parsing and rewriting a large result takes a while: off the event loop, so other hosts'
        # chunk downloads go on meanwhile.
        base_url = f"{request.url.scheme}://{request.url.netloc}"
        rewritten = await run_in_threadpool(chunked_body, response.body, base_url, store)
        answer = response if rewritten is None else Response(rewritten, media_type="application/json")
        queries.add(sql, await run_in_threadpool(answer_shape, answer.body))
        return answer

    async def query_log(request: Request) -> Response:
        return JSONResponse(queries.since(int(request.query_params.get("since", "0"))))

    async def chunk(request: Request) -> Response:
        signature = request.query_params.get("sig", "")
        payload = store.get(signature, request.headers.get(SSE_C_KEY_HEADER, ""))
        if payload is None:  # unknown, expired or evicted, or the wrong key: as S3 answers
            return Response(b"<Error><Code>AccessDenied</Code></Error>", status_code=403, media_type="application/xml")
        headers = {"Content-Encoding": "gzip"}
        fault = _fault(sizes.faults, int(request.path_params["name"].rsplit("_", 1)[-1]), store.gets[signature])
        if fault.isdigit():
            return Response(status_code=int(fault))
        if fault in ("reset", "truncate"):  # the promised length, then the connection drops
            sent = payload[:len(payload) // 2] if fault == "truncate" else b""
            return StreamingResponse(_dropped(sent), media_type="application/octet-stream",
                                     headers={**headers, "Content-Length": str(len(payload))})
        return Response(payload, media_type="application/octet-stream", headers=headers)

    routes[index] = Route(QUERY_ROUTE, query_request, methods=["POST"])
    routes.append(Route(CHUNK_ROUTE, chunk, methods=["GET"]))
    routes.append(Route(QUERY_LOG_ROUTE, query_log, methods=["GET"]))
    logging.getLogger("uvicorn.access").addFilter(_HideChunkUrls())
    return store
