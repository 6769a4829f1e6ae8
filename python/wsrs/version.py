"""Version of wsrs and the default ``Server`` / ``User-Agent`` header."""

from __future__ import annotations

import sys


__all__ = ["USER_AGENT", "version"]

version = "0.1.0"
"""The version of wsrs."""

USER_AGENT = f"Python/{sys.version_info.major}.{sys.version_info.minor} wsrs/{version}"
"""Default value of the ``Server`` and ``User-Agent`` headers."""
