"""The FastAPI application: routes, lifespan (Redis pool, catalog source, freshness refresher) and the
OpenAPI document."""

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic.json_schema import models_json_schema

from streamguard import __version__
from streamguard.serving.auth import Authenticate, TokenFile
from streamguard.serving.fastpath import PATH, FeaturesFastPath
from streamguard.serving.models import (
    CatalogResponse,
    ErrorResponse,
    LookupRequest,
    LookupResponse,
    Readiness,
    ValidationErrorResponse,
)
from streamguard.serving.service import FeatureService, connect
from streamguard.serving.settings import Settings
from streamguard.serving.sources import CatalogSource, ClusterSource, FileSource

JSON = "application/json"
DESCRIPTION = """Feature vectors for online inference, read from Redis.

`POST /features` answers one or many entity rows in one Redis round trip. Each value comes with a
status (`present`, `stale`, `partial`, `expired`, `not_found`) and its event timestamp. `/readyz` fails
while Redis is unreachable or a *required* FeatureView is not fresh (its materialization or its
stream's progress is older than its freshness SLA, or the online store lost data its writers have not
re-seeded yet); problems of *advisory* views are listed but keep the server ready. docs/semantics.md
explains the statuses and the freshness rule."""


def source_for(settings: Settings) -> CatalogSource:
    if settings.config_file is not None:
        return FileSource(settings.config_file)
    assert settings.namespace is not None
    return ClusterSource(settings.namespace, settings.kubeconfig)


async def get_service(request: Request) -> FeatureService:
    """The app's service (async: a sync dependency would cost a thread hop per request)."""
    service: FeatureService = request.app.state.service
    return service


Service = Annotated[FeatureService, Depends(get_service)]


def _features_operation(refs: dict[str, str]) -> dict[str, Any]:
    """The OpenAPI operation of ``POST /features`` (answered by :class:`FeaturesFastPath`)."""

    def content(model: str) -> dict[str, Any]:
        return {JSON: {"schema": {"$ref": refs[model]}}}

    return {
        "summary": "Look up feature values",
        "description": LookupRequest.__doc__ or "",
        "operationId": "lookup_features",
        "requestBody": {"required": True, "content": content("LookupRequest")},
        "responses": {
            "200": {"description": "Values, statuses and event timestamps.", "content": content("LookupResponse")},
            "400": {"description": "Unknown FeatureView, feature or feature set.", "content": content("Error")},
            "401": {"description": "Missing or invalid bearer token.", "content": content("Error")},
            "413": {"description": "More entity rows (or bytes) than the limit.", "content": content("Error")},
            "422": {"description": "Malformed request or entity values.", "content": content("Invalid")},
            "429": {
                "description": "Too many lookups in progress on this worker, or this client's work in progress "
                "or values a second over its limit; retry after the Retry-After seconds.",
                "content": content("Error"),
            },
            "503": {"description": "Redis unreachable or the catalog not loaded yet.", "content": content("Error")},
        },
    }


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The generated document plus ``POST /features`` (its handler is ASGI middleware, not a route)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        keys, definitions = models_json_schema(
            [
                (LookupRequest, "validation"),
                (LookupResponse, "serialization"),
                (ErrorResponse, "serialization"),
                (ValidationErrorResponse, "serialization"),
            ],
            by_alias=True,
            ref_template="#/components/schemas/{model}",
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(definitions["$defs"])
        refs = {
            "LookupRequest": keys[(LookupRequest, "validation")]["$ref"],
            "LookupResponse": keys[(LookupResponse, "serialization")]["$ref"],
            "Error": keys[(ErrorResponse, "serialization")]["$ref"],
            "Invalid": keys[(ValidationErrorResponse, "serialization")]["$ref"],
        }
        schema["paths"] = {PATH: {"post": _features_operation(refs)}, **schema["paths"]}
        app.openapi_schema = schema
        return schema

    return build


def create_app(settings: Settings, source: CatalogSource | None = None) -> FastAPI:
    """The app; ``source`` defaults to the one the settings name."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        catalog_source = source if source is not None else source_for(settings)
        pool = connect(settings)
        service = FeatureService(settings, catalog_source, pool)
        app.state.service = service
        catalog_source.start()
        tasks = [asyncio.create_task(service.refresh_forever())]
        if service.cache.enabled:
            tasks.append(asyncio.create_task(service.watch_written_forever()))
        # What exists now (modules, schemas, the app) lives as long as the process: keep it out of the
        # collector's full passes, which otherwise stop the event loop for tens of ms under load (garbage
        # collected first, so none of it is kept for good).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            catalog_source.stop()
            await pool.close()

    app = FastAPI(
        title="StreamGuard feature serving",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.add_middleware(FeaturesFastPath)
    if settings.auth_token_file is not None:
        app.add_middleware(Authenticate, tokens=TokenFile(settings.auth_token_file))  # outermost: before any read

    @app.get("/livez", summary="Liveness: the process answers")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="Readiness: Redis reachable and every required view within its freshness SLA",
        response_class=Response,
        responses={200: {"model": Readiness}, 503: {"model": Readiness, "description": "Not ready; says why."}},
    )
    async def readyz(service: Service) -> Response:
        status, body = await service.readiness()
        return Response(orjson.dumps(body), status_code=status, media_type=JSON)

    @app.get("/catalog", summary="The served views, features and feature sets", response_model=CatalogResponse)
    async def catalog(service: Service) -> dict[str, Any]:
        return service.catalog_body()

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(service: Service) -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers (``streamguard serve`` passes the settings in the environment)."""
    return create_app(Settings.from_env())
