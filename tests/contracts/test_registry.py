"""The Schema Registry client: paths, error mapping and procedures (pure), then every call against the
stack's Apicurio, with subjects that need quoting."""

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from streamguard.contracts import registry
from streamguard.contracts.registry import (
    AsyncSchemaRegistry,
    IncompatibleSchemaError,
    NotRegisteredError,
    Procedure,
    RegisteredSchema,
    RegistryRejectedError,
    RegistryUnavailableError,
    Request,
    SchemaRegistry,
    T,
)
from tests.workloads.streaming.support import V1, V2, V3

AWKWARD = " a/b?c#d%e&f+g ä"
"""Characters that change a URL's meaning unless quoted: path separator, query, fragment, escape, form."""


def _answer(status: int, body: Any = None) -> httpx.Response:
    return httpx.Response(status, json=body)


def _drive(procedure: Procedure[T], answers: list[httpx.Response]) -> tuple[T, list[Request]]:
    """Run ``procedure`` on canned answers; returns its result and the requests it made."""
    requests: list[Request] = []
    try:
        requests.append(next(procedure))
        for response in answers:
            requests.append(procedure.send(response))
    except StopIteration as done:
        return done.value, requests
    raise AssertionError(f"the procedure wanted more than {len(answers)} answers: {requests}")


# ---- pure -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "path"),
    [
        ("orders-value", "/subjects/orders-value"),
        ("ns.topic-value", "/subjects/ns.topic-value"),
        ("a/b", "/subjects/a%2Fb"),
        ("a b?c#d", "/subjects/a%20b%3Fc%23d"),
        ("100%", "/subjects/100%25"),
        ("x&y+z=", "/subjects/x%26y%2Bz%3D"),
        ("zahlung-ä", "/subjects/zahlung-%C3%A4"),
    ],
)
def test_subjects_are_quoted_into_paths(subject: str, path: str) -> None:
    assert registry.subject_path(subject) == path
    assert registry.subject_path(subject, "versions", "latest") == path + "/versions/latest"
    assert registry.config_path(subject) == "/config" + path[len("/subjects"):]


@pytest.mark.parametrize("subject", ["", ".", ".."])
def test_subjects_that_would_change_the_path_are_refused(subject: str) -> None:
    with pytest.raises(ValueError, match="not a usable registry subject"):
        registry.subject_path(subject)


def test_config_without_subject_is_the_registry_default() -> None:
    assert registry.config_path(None) == "/config"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, NotRegisteredError),
        (422, RegistryRejectedError),
        (401, RegistryRejectedError),
        (503, RegistryUnavailableError),
    ],
)
def test_error_answers_map_to_one_tree(status: int, error: type[Exception]) -> None:
    with pytest.raises(error) as raised:
        registry.raise_for(_answer(status, {"error_code": status, "message": "said so"}), "doing it")
    assert type(raised.value) is error
    assert isinstance(raised.value, registry.RegistryError) and raised.value.status == status
    assert str(raised.value) == f"doing it: HTTP {status}: said so"


def test_success_raises_nothing_and_reasons_are_the_registrys_words() -> None:
    registry.raise_for(_answer(200, {}), "fine")
    assert registry.reason(_answer(409, {"messages": ["one", "two"]})) == "one; two"
    assert registry.reason(httpx.Response(400, text=" plain ")) == "plain"
    assert registry.reason(httpx.Response(400)) == "HTTP 400"


def test_absence_is_an_answer_where_the_caller_expects_it() -> None:
    assert _drive(registry.lookup("s", V1), [_answer(404, {})])[0] is None
    assert _drive(registry.schema_by_id(7), [_answer(404, {})])[0] is None
    assert _drive(registry.versions("s"), [_answer(404, {})])[0] == []
    assert _drive(registry.get_compatibility("s"), [_answer(404, {})])[0] is None
    assert _drive(registry.check("s", V1), [_answer(404, {})])[0] == registry.Verdict(True, [])
    with pytest.raises(NotRegisteredError):
        _drive(registry.version("s", 3), [_answer(404, {"message": "no version 3"})])


def test_refused_registration_is_explained_offline_against_the_history() -> None:
    """Apicurio answers the test with a bare ``is_compatible: false``: the registration's 409 gives the
    reason, and the subject's versions, read back, say which change breaks which rule."""
    subject = f"pay{AWKWARD}"
    answers = [
        _answer(200, {"compatibility": "BACKWARD"}),  # set BACKWARD
        _answer(200, {"is_compatible": False}),  # the test, without a reason
        _answer(409, {"message": "Incompatible artifact"}),  # the registration
        _answer(200, [1]),  # versions
        _answer(200, {"version": 1, "id": 10, "schema": registry.normalized(V1)}),
        _answer(200, {"compatibilityLevel": "BACKWARD"}),
    ]
    with pytest.raises(IncompatibleSchemaError) as refused:
        _drive(registry.register(subject, V3), answers)
    assert refused.value.status == 409 and refused.value.subject == subject
    assert {(v.rule, v.path) for v in refused.value.violations} == {
        ("TYPE_MISMATCH", "Transaction.amount"),
        ("READER_FIELD_MISSING_DEFAULT_VALUE", "Transaction.merchant_category"),
    }
    assert str(refused.value).startswith("Incompatible artifact (BACKWARD (previous version 1)")


def test_a_refusal_whose_history_vanished_keeps_the_registrys_reason() -> None:
    answers = [
        _answer(200, {}),
        _answer(409, {"message": "Incompatible artifact"}),  # the test, with a reason
        _answer(200, [1]),  # versions
        _answer(404, {"message": "no version 1"}),  # deleted meanwhile
    ]
    with pytest.raises(IncompatibleSchemaError) as refused:
        _drive(registry.register("s", V3), answers)
    assert str(refused.value) == "Incompatible artifact" and refused.value.violations == []


def test_registration_sends_the_normalized_schema_under_the_quoted_subject() -> None:
    pretty = json.dumps(json.loads(V1), indent=2)
    answers = [
        _answer(200, {}),
        _answer(404, {}),  # the test: no version yet
        _answer(200, {"id": 5}),
        _answer(200, {"subject": "s", "version": 1, "id": 5, "schema": registry.normalized(V1)}),
    ]
    found, requests = _drive(registry.register("a/b", pretty), answers)
    assert found == RegisteredSchema("a/b", 1, 5, registry.normalized(V1))
    assert [(r.operation, r.method, r.path) for r in requests] == [
        ("set_config", "PUT", "/config/a%2Fb"),
        ("check", "POST", "/compatibility/subjects/a%2Fb/versions/latest"),
        ("register", "POST", "/subjects/a%2Fb/versions"),
        ("lookup", "POST", "/subjects/a%2Fb"),
    ]
    assert requests[2].body == {"schema": registry.normalized(V1), "schemaType": "AVRO"}
    assert "\n" not in registry.normalized(pretty)


def test_hard_delete_also_removes_a_subject_soft_deleted_before() -> None:
    gone, requests = _drive(registry.delete_subject("s", permanent=True), [_answer(404, {}), _answer(200, [1])])
    assert gone is True
    assert [r.params for r in requests] == [None, {"permanent": "true"}]
    assert _drive(registry.delete_subject("s", permanent=True), [_answer(404, {}), _answer(404, {})])[0] is False
    assert _drive(registry.delete_subject("s"), [_answer(200, [1])])[0] is True


# ---- transports: no answer, a server error ----------------------------------------------------------------


@pytest.fixture
def failing_server() -> Iterator[str]:
    """A real HTTP server that answers every request with 503."""

    class Failing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"message": "storage not ready"}')

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}{registry.API_PATH}"
    server.shutdown()
    server.server_close()


def test_no_answer_and_server_errors_are_unavailable_in_both_transports(failing_server: str) -> None:
    dead = f"http://127.0.0.1:9{registry.API_PATH}"
    with SchemaRegistry(dead, timeout=2) as client, pytest.raises(RegistryUnavailableError, match="unreachable"):
        client.versions("s")
    with SchemaRegistry(failing_server) as client, pytest.raises(RegistryUnavailableError) as failed:
        client.schema_by_id(1)
    assert failed.value.status == 503 and "storage not ready" in str(failed.value)
    assert client.calls == {"schema": 1}

    async def both() -> None:
        client = AsyncSchemaRegistry(dead, timeout=2)
        try:
            with pytest.raises(RegistryUnavailableError, match="unreachable"):
                await client.lookup("s", V1)
        finally:
            await client.close()
        client = AsyncSchemaRegistry(failing_server)
        try:
            with pytest.raises(RegistryUnavailableError, match="HTTP 503"):
                await client.compatibility("s")
        finally:
            await client.close()

    asyncio.run(both())


# ---- the stack's Apicurio ---------------------------------------------------------------------------------


@pytest.fixture(params=["plain", "awkward"])
def subject(request: pytest.FixtureRequest, registry_url: str) -> Iterator[str]:
    name = f"contracts-{uuid.uuid4().hex[:10]}" + (AWKWARD if request.param == "awkward" else "") + "-value"
    yield name
    with SchemaRegistry(registry_url) as client:
        client.delete_subject(name, permanent=True)


@pytest.mark.stack
def test_register_evolve_refuse_and_delete(registry_url: str, subject: str) -> None:
    with SchemaRegistry(registry_url) as client:
        first = client.register(subject, V1)
        assert client.compatibility(subject) == "BACKWARD"
        second = client.register(subject, V2)
        assert (first.version, second.version) == (1, 2) and second.id != first.id
        assert client.register(subject, V2) == second, "registering a held schema again changes nothing"
        assert client.lookup(subject, json.dumps(json.loads(V1), indent=2)) == first
        assert [(s.version, s.id) for s in client.history(subject)] == [(1, first.id), (2, second.id)]
        latest = client.version(subject)
        assert (latest.version, latest.id) == (2, second.id)
        assert client.schema_by_id(second.id) == latest.schema

        assert client.check(subject, V2).compatible
        assert not client.check(subject, V3).compatible
        with pytest.raises(IncompatibleSchemaError) as refused:
            client.register(subject, V3)
        assert refused.value.status == 409
        assert ("TYPE_MISMATCH", "Transaction.amount") in {(v.rule, v.path) for v in refused.value.violations}
        assert "Transaction.amount" in str(refused.value)
        assert client.versions(subject) == [1, 2]

        assert client.delete_subject(subject) is True
        assert client.versions(subject) == []
        soft = httpx.get(f"{registry_url}{registry.subject_path(subject, 'versions')}", params={"deleted": "true"})
        assert soft.json() == [1, 2], "a soft delete keeps the versions recoverable"
        assert client.delete_subject(subject, permanent=True) is True
        assert client.delete_subject(subject, permanent=True) is False
        gone = httpx.get(f"{registry_url}{registry.subject_path(subject, 'versions')}", params={"deleted": "true"})
        assert gone.status_code == 404
        with pytest.raises(NotRegisteredError):
            client.version(subject, 1)


@pytest.mark.stack
def test_unknown_ids_and_subjects_are_absent_not_errors(registry_url: str, subject: str) -> None:
    with SchemaRegistry(registry_url) as client:
        assert client.schema_by_id(2**31 - 1) is None
        assert client.versions(subject) == []
        assert client.lookup(subject, V1) is None
        assert client.delete_subject(subject) is False


@pytest.mark.stack
def test_the_async_client_speaks_the_same_calls(registry_url: str, subject: str) -> None:
    async def run() -> tuple[RegisteredSchema, RegisteredSchema | None, list[int]]:
        client = AsyncSchemaRegistry(registry_url)
        try:
            registered = await client.register(subject, V1)
            found = await client.lookup(subject, V1)
            await client.delete_subject(subject)
            return registered, found, await client.versions(subject)
        finally:
            await client.close()

    registered, found, left = asyncio.run(run())
    assert found == registered and left == []
