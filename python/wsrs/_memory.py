"""The C heap: keeping it warm for large messages, giving it back when idle.

glibc's ``free`` keeps freed blocks in the process for reuse; the resident memory of a
server whose connections went idle does not shrink until ``malloc_trim`` releases the free
pages. Idle compaction frees hundreds of KiB per connection with permessage-deflate, so it
asks for a trim here: at most one per second for the whole process, one second after the
first request, and only where glibc provides ``malloc_trim`` (elsewhere this does nothing).

Large messages are the opposite case. Each received message is a new ``bytes``; with
glibc's default thresholds (adjusted at run time to about twice the largest block freed,
so 2 MiB after 1 MiB messages), the top of the heap is given back to the system as soon as
a few such messages are freed together (as when a transport holds what it has not sent
yet), and the next message faults every page in again: measured on uvloop with pipelined
1 MiB messages, 225 page faults per message on an echo server, a third of its time. So the
first connection that handles a message of 64 KiB or more raises the thresholds once per
process (:func:`keep_heap_for_large_messages`); what the heap keeps meanwhile is bounded by
the trim threshold (64 MiB) and given back by the trim of idle compaction.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import os
import time
from collections.abc import Callable


__all__ = ["keep_heap_for_large_messages", "request_trim", "retains_freed_memory"]

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


MMAP_THRESHOLD = 32 * 1024 * 1024
"""Blocks up to this size come from the heap, not from a mapping of their own (glibc's
largest dynamic value)."""

TRIM_THRESHOLD = 64 * 1024 * 1024
"""Free memory at the top of the heap up to this size is kept for reuse."""

# glibc's mallopt() parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_retaining = False


@functools.cache
def _find_mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, or ``None`` where there is no glibc ``malloc_trim`` to give
    the kept memory back."""
    if _find_malloc_trim() is None:
        return None
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # pragma: no cover - glibc has both
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


def keep_heap_for_large_messages() -> bool:
    """Let the C heap keep freed memory for the next large message (once per process).

    Does nothing off glibc, or when the environment sets ``MALLOC_TRIM_THRESHOLD_`` or
    ``MALLOC_MMAP_THRESHOLD_`` (the user's own tuning wins). Returns whether the thresholds
    are raised now or were before.
    """
    global _retaining
    if _retaining:
        return True
    if "MALLOC_TRIM_THRESHOLD_" in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    mallopt = _find_mallopt()
    if mallopt is None:
        return False
    # Both: setting one turns glibc's dynamic adjustment of the other off.
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    _retaining = True
    logger.debug("C heap thresholds raised for large messages")
    return True


def retains_freed_memory() -> bool:
    """Whether :func:`keep_heap_for_large_messages` raised the thresholds: an idle
    connection then asks for a trim even when it had nothing of its own to free."""
    return _retaining


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
