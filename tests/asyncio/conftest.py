"""Every test of ``tests/asyncio`` runs on both transports (``transport_kind``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def on_both_transports(transport_kind: str) -> str:
    """Every test of this package runs on asyncio's transport and on the native one."""
    return transport_kind


@pytest.fixture
def native_only(transport_kind: str) -> None:
    """Tests of code only the native transport runs (accepting, connecting): they run on
    the native transport alone (see :func:`pytest_collection_modifyitems`)."""
    assert transport_kind == "native"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the asyncio-transport runs of ``native_only`` tests (rather than skip them:
    the suite skips nothing)."""
    dropped = [
        item
        for item in items
        if "native_only" in getattr(item, "fixturenames", ())
        and getattr(item, "callspec", None) is not None
        and item.callspec.params.get("transport_kind") == "asyncio"  # type: ignore[attr-defined]
    ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(dropped)
        items[:] = [item for item in items if item not in gone]
