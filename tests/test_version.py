"""wsrs.__version__ comes from Cargo.toml, the one place the version is written."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import wsrs
from wsrs import version as version_module


ROOT = Path(__file__).resolve().parents[1]


def test_version_is_a_string() -> None:
    assert isinstance(wsrs.__version__, str)
    assert wsrs.__version__ == version_module.version
    assert version_module.USER_AGENT.endswith(f" wsrs/{wsrs.__version__}")


def test_version_matches_metadata_when_installed() -> None:
    try:
        installed = metadata.version("wsrs")
    except metadata.PackageNotFoundError:  # pragma: no cover - running without an install
        pytest.skip("wsrs is not installed")
    if Path(wsrs.__file__).resolve().is_relative_to(ROOT / "python"):
        # From a checkout, Cargo.toml wins over an install that may be older.
        with (ROOT / "Cargo.toml").open("rb") as file:
            assert wsrs.__version__ == tomllib.load(file)["package"]["version"]
    else:  # pragma: no cover - the installed-wheel smoke run
        assert wsrs.__version__ == installed


def test_version_from_checkout(tmp_path: Path) -> None:
    find = version_module._version_from_checkout
    assert find(tmp_path) is None  # no Cargo.toml
    (tmp_path / "Cargo.toml").write_text('[package]\nname = "other"\nversion = "1.0.0"\n')
    assert find(tmp_path) is None  # not wsrs
    (tmp_path / "Cargo.toml").write_text("[package\n")
    assert find(tmp_path) is None  # not TOML
    (tmp_path / "Cargo.toml").write_text('[package]\nname = "wsrs"\nversion = "9.8.7"\n')
    assert find(tmp_path) == "9.8.7"


def test_version_without_checkout_or_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_found(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(version_module, "_version_from_checkout", lambda root: None)
    monkeypatch.setattr(metadata, "version", not_found)
    assert version_module._find_version() == "0+unknown"
    monkeypatch.setattr(metadata, "version", lambda name: "1.2.3")
    assert version_module._find_version() == "1.2.3"
