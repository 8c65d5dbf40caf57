"""Fixtures for serving tests: a unique Redis project per test and an in-process app client."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from streamguard.devstack.endpoints import Endpoints
from streamguard.serving.app import create_app
from streamguard.serving.settings import Settings
from tests.serving.support import cover, delete_project_keys, finserve_manifests, unique_project, write_config

ClientFactory = Callable[..., AbstractContextManager[TestClient]]


@pytest.fixture
def project(redis_client: redis.Redis) -> Iterator[str]:
    """A unique project in the stack's Redis, seeded as the writers leave it (a current generation, every
    FinServe view covered): tests of what an uncovered store reads use their own Redis."""
    name = unique_project()
    cover(redis_client, name)
    yield name
    delete_project_keys(redis_client, name)


@pytest.fixture
def config_path(tmp_path: Path, project: str) -> Path:
    return write_config(tmp_path / "features.yaml", finserve_manifests(project))


@pytest.fixture
def serving_client(stack: Endpoints, config_path: Path) -> ClientFactory:
    """``serving_client(**settings)`` -> a TestClient over the app (lifespan run), cache off by default."""

    @contextmanager
    def make(config: Path | None = None, **overrides: object) -> Iterator[TestClient]:
        values: dict[str, object] = {
            "redis_url": stack.redis_url,
            "config_file": str(config or config_path),
            "cache_staleness": 0.0,
            "insecure_no_auth": True,
            **overrides,
        }
        with TestClient(create_app(Settings.model_validate(values))) as client:
            yield client

    return make
