"""The per-client budget of work in progress (pure accounting)."""

import pytest

from streamguard.serving.budget import TRACKED_CLIENTS, ClientBudget, ClientRate, client_of_address, client_of_token


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


def test_a_client_over_its_rate_waits_its_debt_off() -> None:
    rate = ClientRate(rate=100)
    assert rate.wait("a", 0.0) == 0
    rate.charge("a", 60, 0.0)
    assert rate.wait("a", 0.0) == 0  # 40 left
    rate.charge("a", 340, 0.0)  # a lookup larger than the bucket: served, 300 in debt
    assert rate.wait("a", 0.0) == pytest.approx(3.0)
    assert rate.retry_after("a", 0.5) == 3  # 2.5 s, rounded up
    assert rate.wait("b", 0.5) == 0  # another client is not affected
    assert rate.wait("a", 3.0) == 0
    rate.charge("a", 50, 3.0)
    assert rate.wait("a", 3.0) == pytest.approx(0.5)


def test_a_bucket_holds_at_most_one_seconds_worth() -> None:
    rate = ClientRate(rate=10)
    rate.charge("a", 5, 0.0)
    rate.charge("a", 25, 100.0)  # idle for long: refilled to 10, not 1000
    assert rate.wait("a", 100.0) == pytest.approx(1.5)


def test_rate_zero_is_off_and_full_buckets_are_forgotten() -> None:
    off = ClientRate(rate=0)
    off.charge("a", 1e9, 0.0)
    assert off.wait("a", 0.0) == 0 and off.clients == 0
    rate = ClientRate(rate=1)
    for index in range(TRACKED_CLIENTS):
        rate.charge(f"c{index}", 1, 0.0)
    rate.charge("late", 1, 10.0)  # the others refilled by now
    assert rate.clients == 1 and rate.wait("late", 10.0) == 0
