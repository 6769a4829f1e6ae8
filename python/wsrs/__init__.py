"""wsrs: WebSockets for Python asyncio (RFC 6455, RFC 7692) with a Rust core."""

from __future__ import annotations

from . import _core


__version__ = "0.1.0"

__all__ = ["__version__"]
del _core
