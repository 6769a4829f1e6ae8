"""Sans-I/O flow control: :class:`wsrs.flow.ReadGate`, without sockets."""

from __future__ import annotations

import itertools

import pytest

from wsrs.flow import ReadGate


REASONS = [ReadGate.QUEUE, ReadGate.WRITE, ReadGate.HANDSHAKE]


@pytest.mark.parametrize("reason", REASONS)
def test_one_reason_pauses_then_resumes(reason: int) -> None:
    gate = ReadGate()
    assert not gate.paused
    assert gate.pause(reason)
    assert gate.paused and gate.paused_for(reason)
    # Pausing again changes nothing for the transport.
    assert not gate.pause(reason)
    assert gate.resume(reason)
    assert not gate.paused and not gate.paused_for(reason)


@pytest.mark.parametrize(("first", "second"), list(itertools.permutations(REASONS, 2)))
def test_reading_resumes_only_when_the_last_reason_goes(first: int, second: int) -> None:
    gate = ReadGate()
    assert gate.pause(first)
    assert not gate.pause(second)  # already paused: no second pause_reading()
    assert not gate.resume(first)  # still paused for the other reason
    assert gate.paused and gate.paused_for(second) and not gate.paused_for(first)
    assert gate.resume(second)
    assert not gate.paused


def test_resuming_a_reason_that_was_not_there_changes_nothing() -> None:
    gate = ReadGate()
    assert not gate.resume(ReadGate.QUEUE)
    gate.pause(ReadGate.WRITE)
    assert not gate.resume(ReadGate.QUEUE)
    assert gate.paused_for(ReadGate.WRITE)


def test_open_for_good_resumes_and_ignores_later_pauses() -> None:
    gate = ReadGate()
    gate.pause(ReadGate.QUEUE)
    gate.pause(ReadGate.WRITE)
    assert gate.open_for_good()
    assert not gate.paused
    # The stream has ended: nothing pauses reading any more.
    assert not gate.pause(ReadGate.WRITE)
    assert not gate.paused
    assert not gate.resume(ReadGate.WRITE)


def test_open_for_good_when_not_paused_needs_no_resume() -> None:
    gate = ReadGate()
    assert not gate.open_for_good()
    assert not gate.open_for_good()
