"""Fairness between clients on the stack's Redis: a client over its budget of work in progress is refused (429,
Retry-After) while another client is served, and a large lookup read in slices answers exactly what it would in
one piece (values, statuses, and the location of an invalid row)."""

import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import redis

from streamguard.devstack.endpoints import Endpoints
from tests.polling import wait_for
from tests.serving.conftest import ClientFactory
from tests.serving.support import BATCH_VIEWS, entity_id, running_server, write_finserve_rows
from tests.serving.test_auth_and_limits import LOOKUP, write_tokens

pytestmark = pytest.mark.stack

HOSTILE, POLITE = "hostile-token-0123456789", "polite-token-9876543210"


def post(base: str, token: str) -> httpx.Response:
    return httpx.post(f"{base}/features", json=LOOKUP, headers={"authorization": f"Bearer {token}"}, timeout=10)


def test_a_client_over_its_body_bytes_in_progress_is_refused_while_another_is_served(
    stack: Endpoints, config_path: Path, tmp_path: Path
) -> None:
    """The hostile token announces a 4 KiB lookup and sends part of it, so 4 KiB of its work is in progress: its
    next lookup is refused on its Content-Length, before its body is read; the polite token is served meanwhile.
    Once the held lookup completes, the hostile token is served again."""
    tokens = tmp_path / "tokens"
    write_tokens(tokens, HOSTILE, POLITE)
    budget = 4096
    held = orjson.dumps(LOOKUP).ljust(budget)  # a valid lookup padded with blanks to the whole budget
    with running_server(
        config_path, stack.redis_url, "--client-bytes-in-flight", str(budget), "--retry-after", "2",
        auth=("--auth-token-file", str(tokens)),
    ) as base:
        url = urlsplit(base)
        with socket.create_connection((url.hostname, url.port), timeout=20) as slow:
            head = (
                f"POST /features HTTP/1.1\r\nhost: {url.netloc}\r\nauthorization: Bearer {HOSTILE}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(held)}\r\n\r\n"
            )
            slow.sendall(head.encode() + held[:10])
            wait_for("the hostile client refused", lambda: post(base, HOSTILE).status_code == 429, 30)
            refused = post(base, HOSTILE)
            assert refused.status_code == 429 and refused.headers["retry-after"] == "2"
            assert refused.json() == {
                "detail": f"this client has {budget} body bytes of lookups in progress (limit {budget}); retry later"
            }
            for _ in range(3):
                served = post(base, POLITE)
                assert served.status_code == 200 and served.json()["features"] == LOOKUP["features"]
            slow.sendall(held[10:])
            assert slow.recv(65536).startswith(b"HTTP/1.1 200")
        wait_for("the hostile client served again", lambda: post(base, HOSTILE).status_code == 200, 30)
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        refusals = [line for line in metrics.splitlines() if line.startswith("streamguard_serving_lookups_refused")]
        assert any('reason="client_bytes"' in line and not line.endswith(" 0.0") for line in refusals), refusals


def test_a_client_over_its_rate_is_refused_while_another_is_served(
    stack: Endpoints, config_path: Path, tmp_path: Path
) -> None:
    """At one value a second, a lookup of 20 values is served and leaves its client 19 s in debt: its next lookup
    is refused before its body is read (429, Retry-After the seconds left); the other token is served."""
    tokens = tmp_path / "tokens"
    write_tokens(tokens, HOSTILE, POLITE)
    twenty = {**LOOKUP, "entities": [{"customer_id": f"C{index:06d}"} for index in range(20)]}
    with running_server(
        config_path, stack.redis_url, "--client-values-per-second", "1", auth=("--auth-token-file", str(tokens))
    ) as base:
        hostile = {"authorization": f"Bearer {HOSTILE}"}
        assert httpx.post(f"{base}/features", json=twenty, headers=hostile, timeout=10).status_code == 200
        refused = httpx.post(f"{base}/features", json=twenty, headers=hostile, timeout=10)
        assert refused.status_code == 429
        assert refused.json() == {"detail": "this client looked up more than 1 values a second; retry later"}
        assert 1 <= int(refused.headers["retry-after"]) <= 19
        served = post(base, POLITE)
        assert served.status_code == 200 and len(served.json()["results"]) == 1
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert 'streamguard_serving_lookups_refused_total{reason="client_rate"} 1.0' in metrics


def test_a_client_over_its_values_in_progress_is_refused(serving_client: ClientFactory) -> None:
    """Values (rows x features) are counted once the body is parsed: with the client's budget taken, its lookup
    is refused (429, Retry-After) and nothing of it read; another client is served; once given back, it is too."""
    with serving_client(client_values_in_flight=8) as client:
        service: Any = client.app.state.service  # type: ignore[attr-defined]
        me = "address:testclient"  # the TestClient's peer (no authentication here: the address is the client)
        assert service.values_in_flight.acquire(me, 8)
        try:
            refused = client.post("/features", json=LOOKUP)
            assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
            assert refused.json() == {"detail": "this client has 8 values being looked up (limit 8); retry later"}
            assert service.values_in_flight.held(me) == 8
            assert service.values_in_flight.acquire("address:other", 1)  # another client still has its budget
            service.values_in_flight.release("address:other", 1)
        finally:
            service.values_in_flight.release(me, 8)
        assert client.post("/features", json=LOOKUP).status_code == 200
        assert service.values_in_flight.clients == 0 and service.bytes_in_flight.clients == 0


def _rows(count: int) -> list[dict[str, Any]]:
    return [{key: entity_id(key, i) for key, _ in BATCH_VIEWS.values()} for i in range(count)]


def test_a_lookup_in_slices_answers_as_in_one_piece(
    redis_client: redis.Redis, project: str, serving_client: ClientFactory
) -> None:
    write_finserve_rows(redis_client, project, 7, time.time() - 60)
    rows = _rows(9)  # 7 written, 2 not found
    unknown_type = [*rows[:5], {**rows[5], "customer_id": 5}, *rows[6:]]
    long_key = [*rows[:6], {**rows[6], "k" * 64: "v"}, *rows[7:]]
    answers = []
    for slice_rows in (1000, 2):
        with serving_client(slice_rows=slice_rows) as client:
            whole = client.post("/features", json={"featureSet": "fraud", "entities": rows})
            wrong_type = client.post("/features", json={"featureSet": "fraud", "entities": unknown_type})
            wrong_key = client.post("/features", json={"featureSet": "fraud", "entities": long_key})
        assert whole.status_code == 200 and len(whole.json()["results"]) == 9
        assert wrong_type.status_code == 422 and "entities[5].customer_id" in wrong_type.json()["detail"]
        assert wrong_key.status_code == 422 and wrong_key.json()["detail"][0]["loc"][:2] == ["entities", 6]
        answers.append((whole.json(), wrong_type.json(), wrong_key.json()))
    assert answers[0] == answers[1]
    statuses = [set(result["statuses"]) for result in answers[1][0]["results"]]
    assert statuses == [{"present"}] * 7 + [{"not_found"}] * 2
