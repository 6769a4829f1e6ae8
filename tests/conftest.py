"""Fixtures shared by the test packages."""

from __future__ import annotations

import pathlib
import ssl
import subprocess

import pytest


TRANSPORTS = ("asyncio", "native")
"""The transports the socket tests run on (``WSRS_TRANSPORT``): asyncio's, and wsrs' own."""


@pytest.fixture(params=TRANSPORTS)
def transport_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once on each transport, chosen through ``WSRS_TRANSPORT`` (which the
    processes the test starts inherit). The packages that open sockets use it for every
    test (an autouse fixture in their ``conftest.py``)."""
    kind: str = request.param
    monkeypatch.setenv("WSRS_TRANSPORT", kind)
    return kind


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key (openssl)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def server_context(certificate: tuple[pathlib.Path, pathlib.Path]) -> ssl.SSLContext:
    """A TLS server context with :func:`certificate`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def client_context(certificate: tuple[pathlib.Path, pathlib.Path]) -> ssl.SSLContext:
    """A TLS client context that trusts :func:`certificate`."""
    context = ssl.create_default_context(cafile=str(certificate[0]))
    return context
