"""The per-client budget of work in progress (pure accounting)."""

import pytest

from streamguard.serving.budget import ClientBudget, client_of_address, client_of_token


def test_a_client_is_refused_beyond_its_budget_and_others_are_not_affected() -> None:
    budget = ClientBudget(limit=100)
    assert budget.acquire("a", 60)
    assert budget.acquire("a", 40)
    assert not budget.acquire("a", 1)
    assert budget.held("a") == 100
    assert budget.acquire("b", 100)
    budget.release("a", 60)
    assert budget.acquire("a", 60) and not budget.acquire("a", 1)
    assert budget.held("a") == 100


def test_a_client_with_nothing_in_progress_is_admitted_whatever_the_cost() -> None:
    budget = ClientBudget(limit=10)
    assert budget.acquire("a", 1_000)
    assert not budget.acquire("a", 1)
    budget.release("a", 1_000)
    assert budget.acquire("a", 1)


def test_clients_holding_nothing_are_forgotten() -> None:
    budget = ClientBudget(limit=10)
    for client in ("a", "b", "c"):
        assert budget.acquire(client, 5)
    assert budget.clients == 3
    for client in ("a", "b", "c"):
        budget.release(client, 5)
    assert budget.clients == 0 and budget.held("a") == 0


def test_giving_back_more_than_was_taken_is_a_bug() -> None:
    budget = ClientBudget(limit=10)
    assert budget.acquire("a", 3)
    with pytest.raises(ValueError, match="held 3"):
        budget.release("a", 4)


def test_client_identities() -> None:
    first, second = client_of_token(b"s3cret-one"), client_of_token(b"s3cret-two")
    assert first != second and first == client_of_token(b"s3cret-one")
    assert "s3cret" not in first and first.startswith("token:")
    assert client_of_address("10.0.0.7") == "address:10.0.0.7"
    assert client_of_address(None) == "address:unknown"
