"""Redis Cluster's key slots: which of the 16384 slots (and so which master) holds a key."""

import binascii
import functools
import itertools
import string

SLOTS = 16384


def key_slot(key: bytes) -> int:
    """The cluster slot of ``key`` (Redis' ``CLUSTER KEYSLOT``): CRC16 (XMODEM, ``binascii.crc_hqx``) of its hash
    tag (the text between the first ``{`` and the next ``}``, when not empty) or of the whole key."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return binascii.crc_hqx(key, 0) % SLOTS


_TAG_ALPHABET = (string.digits + string.ascii_letters).encode()


@functools.cache
def _slot_tags() -> tuple[bytes, ...]:
    """For each slot, the first text over ``[0-9A-Za-z]`` (shortest first, then in alphabet order) whose CRC16
    falls in it: three characters cover every slot (built once, in milliseconds)."""
    candidates = (bytes(letters) for length in itertools.count(1)
                  for letters in itertools.product(_TAG_ALPHABET, repeat=length))
    tags: dict[int, bytes] = {}
    while len(tags) < SLOTS:
        tag = next(candidates)
        tags.setdefault(binascii.crc_hqx(tag, 0) % SLOTS, tag)
    return tuple(tags[slot] for slot in range(SLOTS))


def hash_tag_of(key: bytes) -> bytes:
    """A hash tag (``{...}``, at most 5 bytes) that puts a key holding it, before any other ``{``, in the slot of
    ``key``: how a key StreamGuard names joins a Feast key of the same entity, whose name it cannot choose."""
    return b"{%s}" % _slot_tags()[key_slot(key)]
