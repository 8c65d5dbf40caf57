"""Write encoded rows into Redis in Feast's layout, as Feast's ``online_write_batch`` does, only faster.

Per chunk of rows: one pipelined round trip of ``HMGET key _ts:<view>`` (the stored event times), then
one of ``HSET key _ts:<view> <ts> <field> <value> ...`` for every row newer than what Redis holds; a
row whose event time is not newer is skipped exactly as Feast skips it. Commands are packed into RESP
by hand and sent on one connection per server (each master of a Redis Cluster): no per-row protobuf objects, no
per-command client overhead.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from streamguard.onlinestore.client import Send, Store, per_server
from streamguard.onlinestore.valueproto import decode_timestamp_nanos

CHUNK_ROWS = 4000


@dataclass
class WriteStats:
    written: int = 0
    skipped: int = 0


def _pipeline(client: redis.Redis, commands: Sequence[bytes]) -> list[object]:
    """Send pre-packed commands to one server on one connection, read every reply; raise the first error reply."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_packed_command([b"".join(commands)])  # type: ignore[no-untyped-call]
        replies = [
            connection.read_response(disable_decoding=True)  # type: ignore[no-untyped-call]
            for _ in commands
        ]
    except BaseException:
        connection.disconnect()  # type: ignore[no-untyped-call]
        raise
    finally:
        pool.release(connection)
    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            raise reply
    return replies


def _sender(commands: Sequence[bytes]) -> Send:
    """Sends the items' pre-packed commands to a server (:func:`streamguard.onlinestore.client.per_server`)."""
    return lambda server, items: _pipeline(server, [commands[i] for i in items])


class FeastRedisWriter:
    """Writes one view's rows; ``fields`` are the mmh3 field names, in the order of ``columns``."""

    def __init__(self, client: Store, ts_field: bytes, fields: Sequence[bytes]) -> None:
        self.client = client
        self.ts_field = ts_field
        self.fields = list(fields)

    def write(
        self,
        keys: Sequence[bytes],
        ts_nanos: Sequence[int],
        ts_bytes: Sequence[bytes],
        columns: Sequence[Sequence[bytes]],
        progress: Callable[[int], object] | None = None,
        chunk_rows: int = CHUNK_ROWS,
    ) -> WriteStats:
        stats = WriteStats()
        hmget = b"$5\r\nHMGET\r\n"
        ts_arg = b"$%d\r\n%s\r\n" % (len(self.ts_field), self.ts_field)
        field_heads = [b"$%d\r\n%s\r\n" % (len(f), f) for f in self.fields]
        hset_head = b"*%d\r\n$4\r\nHSET\r\n" % (2 + 2 * (1 + len(self.fields)))
        for begin in range(0, len(keys), chunk_rows):
            end = min(begin + chunk_rows, len(keys))
            key_args = [b"$%d\r\n%s\r\n" % (len(k), k) for k in keys[begin:end]]
            chunk = keys[begin:end]
            reads = [b"*3\r\n" + hmget + k + ts_arg for k in key_args]
            previous = per_server(self.client, chunk, _sender(reads))
            commands, written = [], []
            for offset, reply in enumerate(previous):
                row = begin + offset
                stored = reply[0] if isinstance(reply, list) else None
                known = decode_timestamp_nanos(stored)
                if known and ts_nanos[row] <= known:
                    stats.skipped += 1
                    continue
                parts = [hset_head, key_args[offset], ts_arg, b"$%d\r\n%s\r\n" % (len(ts_bytes[row]), ts_bytes[row])]
                for head, column in zip(field_heads, columns, strict=True):
                    value = column[row]
                    parts.append(head)
                    parts.append(b"$%d\r\n%s\r\n" % (len(value), value))
                commands.append(b"".join(parts))
                written.append(chunk[offset])
            if commands:
                per_server(self.client, written, _sender(commands))
            stats.written += len(commands)
            if progress:
                progress(end - begin)
        return stats
