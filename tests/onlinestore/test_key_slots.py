"""On a Redis Cluster every key of one entity shares a slot, and so do the project's records a lookup reads: a
FinServe lookup reaches one master per entity and one for the project, at most."""

import random

from streamguard.onlinestore.feast_layout import redis_key_of, serialize_entity_key
from streamguard.onlinestore.generation import coverage_key, generation_key
from streamguard.onlinestore.pane_layout import pane_key, pane_prefix
from streamguard.onlinestore.slots import SLOTS, hash_tag_of, key_slot
from streamguard.onlinestore.window_layout import heartbeat_key

STORE = "fraud_teamDa"


def test_an_entity_s_panes_share_the_slot_of_its_feast_hash() -> None:
    rng = random.Random(21)
    entities = [serialize_entity_key({"account_id": f"A{i:06d}"}) for i in range(500)]
    entities += [serialize_entity_key({"merchant_id": rng.randrange(-(2**63), 2**63)}) for _ in range(500)]
    entities += [bytes(rng.choice(b"{}ab:") for _ in range(rng.randrange(1, 12))) for _ in range(500)]
    prefix = pane_prefix(STORE, "account-realtime", "0123456789ab")
    for entity in entities:
        key = pane_key(prefix, entity)
        assert key.startswith(prefix) and key.endswith(entity + b":")
        assert key_slot(key) == key_slot(redis_key_of(entity, STORE.encode())), entity
    assert len({key_slot(pane_key(prefix, entity)) for entity in entities}) > 1000, "entities still spread out"


def test_the_project_s_marker_coverage_and_progress_share_a_slot() -> None:
    keys = [generation_key(STORE), coverage_key(STORE, "account-realtime"), coverage_key(STORE, "customer-profile"),
            heartbeat_key(STORE, "account-realtime")]
    slots = {key_slot(key) for key in keys}
    assert slots == {key_slot(STORE.encode())}


def test_every_slot_has_a_short_hash_tag() -> None:
    rng = random.Random(5)
    keys = [rng.randbytes(8) for _ in range(300_000)]  # every slot, many times
    assert len({key_slot(key) for key in keys}) == SLOTS
    for key in keys:
        tag = hash_tag_of(key)
        assert len(tag) <= 5 and tag[:1] == b"{" and tag[-1:] == b"}" and b"}" not in tag[1:-1]
        assert key_slot(b"sgp:x:" + tag + b"}{y") == key_slot(key), key
