"""Serving's background loops: a step repeated until the task is cancelled, a failure logged and never ending
the loop."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def forever(step: Callable[[], Awaitable[object]], interval_s: float, what: str,
                  expected: tuple[type[Exception], ...] = ()) -> None:
    """Run ``step`` every ``interval_s`` seconds; an ``expected`` failure (one an outage causes on every turn) is
    logged at debug level, any other with its traceback."""
    while True:
        try:
            await step()
        except expected as error:
            log.debug("%s failed: %s", what, error)
        except Exception:
            log.exception("%s failed", what)
        await asyncio.sleep(interval_s)
