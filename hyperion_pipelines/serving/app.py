"""The HTTP layer of ``hyperion serve``: routes, the bearer token, metrics and the OpenAPI schema.

``POST /search`` answers from :class:`~hyperion_pipelines.serving.live_index.LiveSearch`;
``GET /healthz`` says the service is up (without touching the index, so it never waits for a
run); ``GET /metrics`` is Prometheus's text format; ``GET /openapi.json`` describes all four.
With a token set, ``/search`` and ``/openapi.json`` need ``Authorization: Bearer <token>``;
``/healthz`` and ``/metrics`` (counts and latencies, no document text) stay open to probes and
to Prometheus, as on most services.
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hyperion_pipelines.index.local_lock import IndexInUse
from hyperion_pipelines.serving.live_index import Answer, NothingIndexed
from hyperion_pipelines.serving.queries import (
    DEFAULT_K,
    DEFAULT_MAX_K,
    REQUEST_FIELDS,
    RESULT_FIELDS,
    BadRequest,
    SearchQuery,
    read_request,
)

#: Request bodies above this are refused unread: a query is short.
MAX_BODY_BYTES = 64 * 1024
_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)


class Searcher(Protocol):
    """What the routes need of the index (``LiveSearch``; a test may give its own)."""

    def search(self, query: SearchQuery) -> Answer: ...


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "hyperion_search_latency_seconds",
            "Seconds from a search request's arrival to its answer (embedding the query and searching).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "hyperion_search_requests", "Search requests answered, by HTTP status.", ["status"], registry=self.registry
        )
        self.errors = Counter(
            "hyperion_search_errors",
            "Search requests that failed on our side or the index's (5xx), by cause.",
            ["cause"],
            registry=self.registry,
        )


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def openapi_schema(max_k: int) -> dict[str, Any]:
    """The service's OpenAPI 3.1 description, made from the request and result field tables."""

    def props(fields: dict[str, tuple[str, str]]) -> dict[str, Any]:
        return {name: {"type": kind, "description": text} for name, (kind, text) in fields.items()}

    request = {
        "type": "object",
        "required": ["query"],
        "additionalProperties": False,
        "properties": props(REQUEST_FIELDS),
    }
    request["properties"]["k"] |= {"minimum": 1, "maximum": max_k, "default": DEFAULT_K}
    request["properties"]["query"] |= {"minLength": 1}
    error = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
    answer = {
        "type": "object",
        "properties": {
            "collection": {"type": "string", "description": "The collection behind the live alias that answered."},
            "notes": {"type": "array", "items": {"type": "string"}},
            "took_ms": {"type": "number"},
            "results": {"type": "array", "items": {"type": "object", "properties": props(RESULT_FIELDS)}},
        },
    }

    def returns(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"description": description, **({"content": {"application/json": {"schema": schema}}} if schema else {})}

    return {
        "openapi": "3.1.0",
        "info": {"title": "Hyperion search", "version": "1"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/search": {
                "post": {
                    "summary": "The chunks nearest a query, from the collection behind the live alias.",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
                    "responses": {
                        "200": returns("The results, nearest first.", answer),
                        "400": returns("A request that cannot be answered, and why.", error),
                        "401": returns("A missing or wrong bearer token.", error),
                        "503": returns("Nothing indexed yet, or the embedded index held by a run.", error),
                    },
                }
            },
            "/healthz": {"get": {"summary": "Up.", "security": [], "responses": {"200": returns("Up.")}}},
            "/metrics": {
                "get": {"summary": "Prometheus metrics.", "security": [], "responses": {"200": returns("Text format.")}}
            },
            "/openapi.json": {"get": {"summary": "This schema.", "responses": {"200": returns("OpenAPI.")}}},
        },
    }


def build_app(
    searcher: Searcher, *, token: str | None = None, max_k: int = DEFAULT_MAX_K, about: dict | None = None
) -> Starlette:
    """The service. ``token``: required as a bearer token by ``/search`` and ``/openapi.json``;
    ``about``: what ``/healthz`` reports besides its status (pipeline, model)."""
    metrics = Metrics()
    schema = openapi_schema(max_k)

    def authorised(request: Request) -> bool:
        if token is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    async def search(request: Request) -> Response:
        started = time.perf_counter()
        response = await _search(request)
        metrics.requests.labels(str(response.status_code)).inc()
        if response.status_code == 200:
            metrics.latency.observe(time.perf_counter() - started)
        return response

    async def _search(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "a bearer token is required: Authorization: Bearer <HYPERION_SERVE_TOKEN>")
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return _error(413, f"the body is {len(raw)} bytes; at most {MAX_BODY_BYTES}")
        try:
            query = read_request(json.loads(raw), max_k)
        except json.JSONDecodeError as exc:
            return _error(400, f"the body is not JSON: {exc}")
        except BadRequest as exc:
            return _error(400, str(exc))
        started = time.perf_counter()
        try:
            answer = await run_in_threadpool(searcher.search, query)
        except NothingIndexed as exc:
            return _error(503, str(exc))
        except IndexInUse as exc:
            metrics.errors.labels("index_in_use").inc()
            return _error(503, f"{exc}; retry shortly, or serve from a Milvus server", **{"Retry-After": "5"})
        except Exception as exc:  # the index or the model failed: say so, count it, stay up
            metrics.errors.labels(type(exc).__name__).inc()
            return _error(500, f"the search failed: {type(exc).__name__}: {exc}")
        took_ms = round((time.perf_counter() - started) * 1000, 2)
        return JSONResponse(
            {"collection": answer.collection, "notes": answer.notes, "took_ms": took_ms, "results": answer.results}
        )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", **(about or {})})

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "a bearer token is required")
        return JSONResponse(schema)

    return Starlette(
        routes=[
            Route("/search", search, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ]
    )
