"""Authentication and the body limit of the real server (``streamguard serve``: uvicorn, httptools) on the stack's
Redis: 401 without or with a wrong token, tokens rotated by rewriting the file (no restart), probes open, and an
over-limit body refused with 413 on its Content-Length, before a byte of it is read."""

import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from click.testing import CliRunner

from streamguard.devstack.endpoints import Endpoints
from streamguard.serving.cli import command as serve
from tests.polling import wait_for
from tests.serving.support import running_server

pytestmark = pytest.mark.stack

LOOKUP = {"features": ["customer-txn-windows:txn_count_1m"], "entities": [{"customer_id": "C000001"}]}


def write_tokens(path: Path, *tokens: str) -> None:
    """Replace the file the way a Secret update does: a new file renamed over the old one."""
    staged = path.with_suffix(".new")
    staged.write_text("# accepted tokens\n" + "".join(f"{token}\n" for token in tokens))
    staged.replace(path)


def lookup(base: str, token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(f"{base}/features", json=LOOKUP, headers=headers, timeout=10)


def test_lookups_need_a_token_from_the_file_and_rotation_needs_no_restart(
    stack: Endpoints, config_path: Path, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    write_tokens(tokens, "first-token-0123456789")
    with running_server(config_path, stack.redis_url, auth=("--auth-token-file", str(tokens))) as base:
        missing = lookup(base, None)
        assert missing.status_code == 401 and missing.json() == {"detail": "missing bearer token"}
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert lookup(base, "wrong-token").status_code == 401
        assert (
            httpx.post(f"{base}/features", json=LOOKUP, headers={"authorization": "Basic Zm9vOmJhcg=="}).status_code
            == 401
        )
        assert lookup(base, "first-token-0123456789").status_code == 200
        for path in ("/catalog", "/docs", "/openapi.json"):
            assert httpx.get(f"{base}{path}", timeout=10).status_code == 401, path
        for path in ("/livez", "/metrics"):
            assert httpx.get(f"{base}{path}", timeout=10).status_code == 200, path
        assert httpx.get(f"{base}/readyz", timeout=10).status_code in (200, 503)  # open; readiness is its own

        # Rotation: old and new both accepted during the overlap, then only the new one.
        write_tokens(tokens, "first-token-0123456789", "second-token-9876543210")
        wait_for("the new token accepted", lambda: lookup(base, "second-token-9876543210").status_code == 200, 30)
        assert lookup(base, "first-token-0123456789").status_code == 200
        write_tokens(tokens, "second-token-9876543210")
        wait_for("the old token refused", lambda: lookup(base, "first-token-0123456789").status_code == 401, 30)
        assert lookup(base, "second-token-9876543210").status_code == 200

        # A Secret emptied by mistake does not open the server: the last tokens stay in force.
        write_tokens(tokens)
        assert lookup(base, None).status_code == 401
        assert lookup(base, "second-token-9876543210").status_code == 200


def test_serving_without_auth_must_be_asked_for(config_path: Path, tmp_path: Path) -> None:
    neither = CliRunner().invoke(serve, ["--config", str(config_path)])
    assert neither.exit_code == 2 and "--insecure-no-auth" in neither.output
    empty = tmp_path / "empty"
    empty.write_text("# no token yet\n")
    refused = CliRunner().invoke(serve, ["--config", str(config_path), "--auth-token-file", str(empty)])
    assert refused.exit_code == 1 and "no bearer token" in refused.output


def raw_post(base: str, headers: list[str], body: bytes, timeout: float = 20) -> tuple[int, bytes]:
    """One POST over a plain socket (to send a Content-Length the body does not match); status and body."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        head = "\r\n".join(["POST /features HTTP/1.1", f"host: {url.netloc}", *headers, "", ""]).encode()
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_an_over_limit_body_is_refused_before_it_is_read(stack: Endpoints, config_path: Path) -> None:
    limit = 64 * 1024
    with running_server(config_path, stack.redis_url, "--max-body-bytes", str(limit)) as base:
        # The header announces 2 MiB and not one byte follows: a server that read before refusing would wait.
        status, body = raw_post(base, ["content-type: application/json", f"content-length: {2 * 1024 * 1024}"], b"")
        assert status == 413 and orjson.loads(body) == {"detail": f"request body over {limit} bytes"}

        # Without a Content-Length (chunked), the read stops past the limit; the body is not parsed (not JSON).
        chunk = b"x" * (limit + 1)
        chunked = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n"
        status, body = raw_post(base, ["content-type: application/json", "transfer-encoding: chunked"], chunked)
        assert status == 413, body

        # At the limit a body is read and parsed as usual.
        assert httpx.post(f"{base}/features", json=LOOKUP, timeout=10).status_code == 200
        status, _ = raw_post(base, ["content-type: application/json", f"content-length: {limit}"], b" " * limit)
        assert status == 422  # read whole, then refused as malformed JSON: the limit is not off by one


def test_a_full_worker_answers_429_with_retry_after(stack: Endpoints, config_path: Path) -> None:
    """One lookup slot, held by a client that announced a body and sent half of it: the next lookup is told to
    come back (429, Retry-After); once the slot is free, lookups are answered again."""
    body = orjson.dumps(LOOKUP)
    with running_server(config_path, stack.redis_url, "--max-concurrent-lookups", "1", "--retry-after", "3") as base:
        url = urlsplit(base)
        with socket.create_connection((url.hostname, url.port), timeout=20) as slow:
            head = f"POST /features HTTP/1.1\r\nhost: {url.netloc}\r\ncontent-type: application/json\r\n"
            slow.sendall(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body[:10])
            wait_for(
                "a lookup refused while the slot is held",
                lambda: httpx.post(f"{base}/features", json=LOOKUP, timeout=10).status_code == 429,
                30,
            )
            busy = httpx.post(f"{base}/features", json=LOOKUP, timeout=10)
            assert busy.status_code == 429
            assert busy.headers["retry-after"] == "3" and "lookups in progress" in busy.json()["detail"]
            slow.sendall(body[10:])
            assert slow.recv(65536).startswith(b"HTTP/1.1 200")
        wait_for("lookups answered again", lambda: httpx.post(f"{base}/features", json=LOOKUP).status_code == 200, 30)


def test_entity_rows_are_capped_and_repeated_references_collapsed(stack: Endpoints, config_path: Path) -> None:
    with running_server(config_path, stack.redis_url, "--max-entity-keys", "4") as base:
        row = {f"k{index}": "v" for index in range(5)}
        wide = httpx.post(f"{base}/features", json={**LOOKUP, "entities": [row]}, timeout=10)
        assert wide.status_code == 413 and wide.json() == {"detail": "an entity row has more than 4 keys"}
        refs = ["customer-txn-windows:txn_count_1m", "customer-txn-windows:amount_sum_5m"]
        repeated = {**LOOKUP, "features": [refs[0], refs[1], refs[0], refs[1], refs[0]]}
        answer = httpx.post(f"{base}/features", json=repeated, timeout=10)
        assert answer.status_code == 200 and answer.json()["features"] == refs
        assert len(answer.json()["results"][0]["values"]) == 2
