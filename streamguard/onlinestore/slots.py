"""Redis Cluster's key slots: which of the 16384 slots (and so which master) holds a key."""

import binascii

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
