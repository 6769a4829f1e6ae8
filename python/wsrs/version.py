"""Version of wsrs and the default ``Server`` / ``User-Agent`` header.

The version is written in one place, ``Cargo.toml``: maturin copies it into the package
metadata (``pyproject.toml`` declares ``dynamic = ["version"]``), and this module reads it
back from there. Run from a checkout (``PYTHONPATH=python``, or an editable install built
before the last version bump), the ``Cargo.toml`` of that checkout wins, so the source tree
never reports the version of some other installed copy.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path


__all__ = ["USER_AGENT", "version"]


def _version_from_checkout(root: Path) -> str | None:
    """Return the version in ``root/Cargo.toml`` if it describes wsrs, else ``None``."""
    try:
        with (root / "Cargo.toml").open("rb") as file:
            package = tomllib.load(file).get("package", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    if package.get("name") != "wsrs" or not isinstance(package.get("version"), str):
        return None
    return str(package["version"])


def _find_version() -> str:
    # python/wsrs/version.py in a checkout; site-packages/wsrs/version.py once installed.
    from_checkout = _version_from_checkout(Path(__file__).resolve().parents[2])
    if from_checkout is not None:
        return from_checkout
    try:
        return metadata.version("wsrs")
    except metadata.PackageNotFoundError:  # copied somewhere by hand, without metadata
        return "0+unknown"


version = _find_version()
"""The version of wsrs (``Cargo.toml``'s, through the package metadata)."""

USER_AGENT = f"Python/{sys.version_info.major}.{sys.version_info.minor} wsrs/{version}"
"""Default value of the ``Server`` and ``User-Agent`` headers."""
