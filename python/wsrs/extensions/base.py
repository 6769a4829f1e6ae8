"""Extension negotiation: the interfaces of extensions and of their factories.

An extension is negotiated in the opening handshake (RFC 6455 §9): the client's factories
offer parameters in ``Sec-WebSocket-Extensions``, the server's factories accept one offer per
extension and answer with parameters, and both sides end up with :class:`Extension`
instances in ``websocket.extensions``.

wsrs applies extensions in its Rust core: an extension's job is to say how the core's reader
and writer are configured (:meth:`Extension.reader_options` and
:meth:`Extension.writer_options`), not to transform frames in Python, so messages never
pass through a per-frame Python loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..headers import ExtensionParameter


__all__ = ["ClientExtensionFactory", "Extension", "ServerExtensionFactory"]


class Extension:
    """Base class for a negotiated extension."""

    name: str
    """Extension identifier, e.g. ``"permessage-deflate"``."""

    def reader_options(self) -> dict[str, Any]:
        """Return the keyword arguments this extension sets on ``wsrs._core.Reader``."""
        return {}

    def writer_options(self) -> dict[str, Any]:
        """Return the keyword arguments this extension sets on ``wsrs._core.Writer``."""
        return {}


class ClientExtensionFactory:
    """Base class for the client side of an extension's negotiation."""

    name: str
    """Extension identifier."""

    def get_request_params(self) -> list[ExtensionParameter]:
        """Return the parameters to offer in the request.

        Returns:
            A list of ``(name, value)`` pairs; ``value`` is ``None`` for a parameter without
            a value.
        """
        raise NotImplementedError

    def process_response_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> Extension:
        """Check the parameters the server answered with and build the extension.

        Args:
            params: Parameters from the server's response for this extension.
            accepted_extensions: Extensions already accepted in this handshake.

        Returns:
            The negotiated extension.

        Raises:
            NegotiationError: If the response is not acceptable.
        """
        raise NotImplementedError


class ServerExtensionFactory:
    """Base class for the server side of an extension's negotiation."""

    name: str
    """Extension identifier."""

    def process_request_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> tuple[list[ExtensionParameter], Extension]:
        """Answer one offer of the client.

        Args:
            params: Parameters of this offer.
            accepted_extensions: Extensions already accepted in this handshake.

        Returns:
            The parameters to put in the response, and the negotiated extension.

        Raises:
            NegotiationError: If this offer is not acceptable; the server then tries the
                next offer, and declines the extension if none is acceptable.
        """
        raise NotImplementedError
