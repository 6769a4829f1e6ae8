"""Giving freed heap memory back to the operating system.

glibc's ``free`` keeps freed blocks in the process for reuse; the resident memory of a
server whose connections went idle does not shrink until ``malloc_trim`` releases the free
pages. Idle compaction frees hundreds of KiB per connection with permessage-deflate, so it
asks for a trim here: at most one per second for the whole process, one second after the
first request, and only where glibc provides ``malloc_trim`` (elsewhere this does nothing).
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import time
from collections.abc import Callable


__all__ = ["request_trim"]

logger = logging.getLogger(__name__)

TRIM_DELAY = 1.0
"""Seconds between a request and the trim: requests from connections that go idle
together are served by one trim."""

_pending = False


@functools.cache
def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` or ``None`` (musl, macOS, Windows); looked up once."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def _trim() -> None:
    global _pending
    _pending = False
    trim = _find_malloc_trim()
    assert trim is not None, "scheduled by request_trim only when there is one"
    start = time.perf_counter()
    trim(0)
    logger.debug("malloc_trim: %.1f ms", (time.perf_counter() - start) * 1000)


def request_trim(loop: asyncio.AbstractEventLoop) -> bool:
    """Schedule a trim of the C heap on ``loop`` unless one is pending.

    Returns whether a trim is (now or already) scheduled.
    """
    global _pending
    if _find_malloc_trim() is None:
        return False
    if not _pending:
        _pending = True
        loop.call_later(TRIM_DELAY, _trim)
    return True
