"""Every test of ``tests/asyncio`` runs on both transports (``transport_kind``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def on_both_transports(transport_kind: str) -> str:
    """Every test of this package runs on asyncio's transport and on the native one."""
    return transport_kind


@pytest.fixture
def native_only(transport_kind: str) -> None:
    """Tests of code only the native transport runs (accepting, connecting): skipped on
    asyncio's."""
    if transport_kind != "native":
        pytest.skip("only the native transport runs this code")
