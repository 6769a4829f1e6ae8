"""Every test of ``tests/asyncio`` runs on both transports (``transport_kind``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def on_both_transports(transport_kind: str) -> str:
    """Every test of this package runs on asyncio's transport and on the native one."""
    return transport_kind
