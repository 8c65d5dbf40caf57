"""Settings of one serving process (from CLI flags, passed to uvicorn workers as JSON in the env)."""

import os
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from streamguard.onlinestore.client import store_url

SETTINGS_ENV = "STREAMGUARD_SERVING_SETTINGS"
REQUIRED_VIEWS_ENV = "STREAMGUARD_SERVING_REQUIRED_VIEWS"
ADVISORY_VIEWS_ENV = "STREAMGUARD_SERVING_ADVISORY_VIEWS"


def parse_view_list(text: str) -> tuple[str, ...]:
    """``"a, b-*"`` -> ``("a", "b-*")`` (FeatureView names or globs; blanks dropped)."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="The online store (streamguard.onlinestore.client.store_url): ?cluster=true names a node of a "
                    "Redis Cluster, serving learns the others from it; ?sentinel=<master name> names a sentinel "
                    "(more in &sentinels=host:port,...), serving reads the master it names.",
    )
    config_file: str | None = Field(default=None, description="YAML list of FeatureView/StreamingWindow manifests.")
    namespace: str | None = Field(default=None, description="Watch FeatureViews and StreamingWindows here.")
    kubeconfig: str | None = None
    max_connections: int = Field(default=50, ge=1)
    socket_timeout: float = Field(default=0.25, gt=0, description="Seconds to wait for a Redis reply.")
    connect_timeout: float = Field(default=0.25, gt=0)
    pool_timeout: float = Field(default=0.5, gt=0, description="Seconds to wait for a free pooled connection.")
    cache_staleness: float = Field(default=1.0, ge=0, description="Max age of a cached read; 0 turns the cache off.")
    cache_max_entries: int = Field(default=100_000, ge=1)
    cache_max_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Estimated bytes of cached reads (keys and replies)."
    )
    selection_cache_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Estimated bytes of resolved feature lists kept."
    )
    max_entity_keys: int = Field(default=16, ge=1, description="Keys per entity row; more -> 413.")
    max_concurrent_lookups: int = Field(
        default=64, ge=1, description="POST /features in progress per worker; more -> 429 with Retry-After."
    )
    client_bytes_in_flight: int = Field(
        default=1024 * 1024,
        ge=1,
        description="Body bytes of POST /features one client (bearer token, or address without authentication) "
        "may have in progress per worker, counted from Content-Length before the body is read (the body limit "
        "when there is none); more -> 429 with Retry-After. A client with nothing in progress is always admitted.",
    )
    client_values_in_flight: int = Field(
        default=65536,
        ge=1,
        description="Values (entity rows x features) one client may have being looked up per worker; more -> "
        "429 with Retry-After, checked once the body is parsed. A client with nothing in progress is admitted.",
    )
    client_values_per_second: float = Field(
        default=100_000,
        ge=0,
        description="Values (entity rows x features) one client may have looked up per second per worker, as a "
        "token bucket holding one second's worth; a client over it gets 429 with Retry-After before its next body "
        "is read. 0: no rate limit.",
    )
    slice_rows: int = Field(
        default=50,
        ge=1,
        description="Entity rows validated or looked up between two turns of the event loop, so one large lookup "
        "never holds other requests for long (each slice reads Redis in its own round trip).",
    )
    retry_after_seconds: int = Field(default=1, ge=1, description="Retry-After of a 429.")
    max_batch: int = Field(default=1000, ge=1, description="Entity rows per request; more -> 413.")
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest POST /features body; a larger Content-Length is refused (413) before any byte is "
        "read, and a body without one stops being read past it.",
    )
    auth_token_file: str | None = Field(
        default=None, description="File of accepted bearer tokens, one a line (a mounted Secret; re-read on change)."
    )
    insecure_no_auth: bool = Field(
        default=False, description="Development only: serve without authentication (needs saying explicitly)."
    )
    freshness_interval: float = Field(
        default=5.0, gt=0, description="Seconds between freshness refreshes (and re-reads of the server's identity)."
    )
    required_views: tuple[str, ...] = Field(
        default=("*",), description="Globs of the FeatureViews readiness requires to be fresh (default: all)."
    )
    advisory_views: tuple[str, ...] = Field(
        default=(), description="Globs of FeatureViews whose staleness is reported but never makes the pod unready."
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.config_file is None) == (self.namespace is None):
            raise ValueError("give exactly one feature source: a config file or a namespace to watch")
        return self

    @model_validator(mode="after")
    def _auth_explicit(self) -> Self:
        if (self.auth_token_file is None) == (not self.insecure_no_auth):
            raise ValueError(
                "give exactly one of a bearer token file (--auth-token-file) or --insecure-no-auth (development)"
            )
        return self

    @field_validator("redis_url")
    @classmethod
    def _store_url(cls, url: str) -> str:
        store_url(url)
        return url

    @field_validator("required_views", "advisory_views", mode="before")
    @classmethod
    def _view_list(cls, value: object) -> object:
        """A comma-separated string is a list (as flags and environment variables give it)."""
        return parse_view_list(value) if isinstance(value, str) else value

    def to_env(self) -> dict[str, str]:
        return {SETTINGS_ENV: self.model_dump_json()}

    @classmethod
    def from_env(cls) -> "Settings":
        raw = os.environ.get(SETTINGS_ENV)
        if raw is None:
            raise RuntimeError(f"{SETTINGS_ENV} is not set (start the server with `streamguard serve`)")
        return cls.model_validate_json(raw)
