"""Sans-I/O flow control: when an endpoint reads from its peer.

Everything a peer can make an endpoint hold in memory without the application asking is
bounded by one rule: **stop reading from the peer while the endpoint cannot keep up**, so the
peer's own TCP window throttles it. :class:`ReadGate` records why reading is paused; every
front end and transport asks it, and pauses or resumes its transport only when the answer
changes. The reasons:

- :attr:`ReadGate.QUEUE`: received messages fill the queue (``max_queue``) because the
  application does not read them.
- :attr:`ReadGate.WRITE`: the transport's write buffer is over its high-water mark
  (``write_limit``). Input makes an endpoint write on its own (a pong for each ping, the echo
  of a close frame), so a peer that floods pings and never reads would otherwise grow the
  write buffer without bound; with reading paused, at most what one read carried is
  answered above the mark.
- :attr:`ReadGate.HANDSHAKE`: bytes received during the opening handshake exceed
  ``read_limit`` (the handshake may be waiting on the application, e.g. an asynchronous
  ``process_request``), so a peer cannot pile up bytes before the connection is open.

Reading resumes when the last reason goes away. Once the stream has ended (close frame
received, connection failed, or TCP lost) the core ignores further input and answers nothing,
so :meth:`ReadGate.open_for_good` drops every reason and reading goes on until the peer closes
TCP, as the closing handshake needs.
"""

from __future__ import annotations


__all__ = ["ReadGate"]


class ReadGate:
    """Why reading from the peer is paused, if it is.

    :meth:`pause` and :meth:`resume` return ``True`` exactly when the transport's reading
    must change (the first reason arrived, or the last one went away), so a front end calls
    ``transport.pause_reading()`` / ``transport.resume_reading()`` only then.
    """

    QUEUE = 1
    """The queue of received messages is full: the application reads slower than the peer
    sends."""
    WRITE = 2
    """The write buffer is over ``write_limit``: the peer reads slower than it makes this
    endpoint write."""
    HANDSHAKE = 4
    """More than ``read_limit`` bytes arrived before the opening handshake finished."""

    __slots__ = ("_ended", "_reasons")

    def __init__(self) -> None:
        self._reasons = 0
        self._ended = False

    @property
    def paused(self) -> bool:
        """Whether reading is paused, for any reason."""
        return self._reasons != 0

    def paused_for(self, reason: int) -> bool:
        """Whether ``reason`` is one of the reasons reading is paused."""
        return bool(self._reasons & reason)

    def pause(self, reason: int) -> bool:
        """Add ``reason``; return whether reading must pause now (it was not paused).

        After :meth:`open_for_good`, nothing pauses reading any more: return ``False``.
        """
        if self._ended:
            return False
        was_paused = self._reasons != 0
        self._reasons |= reason
        return not was_paused

    def resume(self, reason: int) -> bool:
        """Remove ``reason``; return whether reading must resume now (it was the last)."""
        if not self._reasons & reason:
            return False
        self._reasons &= ~reason
        return self._reasons == 0

    def open_for_good(self) -> bool:
        """Drop every reason, for good; return whether reading must resume now.

        Call it once no input can make the endpoint hold more memory: the stream has ended.
        """
        self._ended = True
        was_paused = self._reasons != 0
        self._reasons = 0
        return was_paused
