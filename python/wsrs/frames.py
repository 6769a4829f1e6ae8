"""Names of the frame layer, as websockets 17 exports them: :class:`Opcode`, :class:`CloseCode`,
:class:`Close`.

The codec itself is in Rust (:mod:`wsrs._core`); these are the values applications and
exceptions use.
"""

from __future__ import annotations

import dataclasses
import enum

from . import _core


__all__ = ["CLOSE_CODE_EXPLANATIONS", "Close", "CloseCode", "Opcode"]


class Opcode(enum.IntEnum):
    """Opcode values of WebSocket frames (RFC 6455 §5.2)."""

    CONT = 0x00
    TEXT = 0x01
    BINARY = 0x02
    CLOSE = 0x08
    PING = 0x09
    PONG = 0x0A


class CloseCode(enum.IntEnum):
    """Close codes defined by RFC 6455 §7.4.1 and the IANA registry."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    # 1004 is reserved.
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


CLOSE_CODE_EXPLANATIONS: dict[int, str] = {
    CloseCode.NORMAL_CLOSURE: "OK",
    CloseCode.GOING_AWAY: "going away",
    CloseCode.PROTOCOL_ERROR: "protocol error",
    CloseCode.UNSUPPORTED_DATA: "unsupported data",
    CloseCode.NO_STATUS_RCVD: "no status received [internal]",
    CloseCode.ABNORMAL_CLOSURE: "abnormal closure [internal]",
    CloseCode.INVALID_DATA: "invalid frame payload data",
    CloseCode.POLICY_VIOLATION: "policy violation",
    CloseCode.MESSAGE_TOO_BIG: "message too big",
    CloseCode.MANDATORY_EXTENSION: "mandatory extension",
    CloseCode.INTERNAL_ERROR: "internal error",
    CloseCode.SERVICE_RESTART: "service restart",
    CloseCode.TRY_AGAIN_LATER: "try again later",
    CloseCode.BAD_GATEWAY: "bad gateway",
    CloseCode.TLS_HANDSHAKE: "TLS handshake failure [internal]",
}
"""What :class:`Close` says of each close code, in the words of websockets >= 10 (the 4.0
API's messages use :data:`wsrs.exceptions.CLOSE_CODES`, the words of websockets 4.0)."""


@dataclasses.dataclass(frozen=True)
class Close:
    """The code and reason of a close frame.

    Attributes:
        code: Close code; 1005 stands for a close frame without one.
        reason: Close reason; empty means none.
    """

    code: int
    reason: str

    def __str__(self) -> str:
        if 3000 <= self.code < 4000:
            explanation = "registered"
        elif 4000 <= self.code < 5000:
            explanation = "private use"
        else:
            explanation = CLOSE_CODE_EXPLANATIONS.get(self.code, "unknown")
        result = f"{self.code} ({explanation})"
        if self.reason:
            result = f"{result} {self.reason}"
        return result

    @classmethod
    def parse(cls, data: bytes) -> Close:
        """Parse the payload of a close frame.

        Raises:
            ~wsrs.exceptions.ProtocolError: When the payload is malformed or the code may
                not be received.
        """
        code, reason = _core.parse_close(data)
        return cls(code, reason)

    def serialize(self) -> bytes:
        """Serialize the payload of a close frame.

        Raises:
            ValueError: When the code may not be sent or the reason is too long.
        """
        return _core.build_close(
            None if self.code == CloseCode.NO_STATUS_RCVD else self.code, self.reason
        )
