"""Sphinx configuration of the wsrs documentation (``make docs``).

autodoc imports wsrs from ``python/`` (scripts/docs.sh puts it on ``PYTHONPATH`` with the
compiled ``_core`` beside it); napoleon reads the Google-style sections of the docstrings.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any


ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "python") not in sys.path:
    sys.path.insert(0, str(ROOT / "python"))

import wsrs  # noqa: E402


project = "wsrs"
author = "the wsrs developers"
copyright = "2026, the wsrs developers"
release = wsrs.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
exclude_patterns = ["_build"]
templates_path: list[str] = []

# Every cross-reference must resolve (make docs runs sphinx-build -n -W). The standard
# library's inventory comes from Debian's python3-doc: nothing is fetched at build time.
nitpicky = True
PYTHON_INVENTORY = Path("/usr/share/doc/python3/html/objects.inv")
nitpick_ignore_regex = [
    # Internal modules and private names that type hints mention: they have no page.
    (r"py:.*", r"wsrs\._core(\..*)?"),
    (r"py:.*", r"wsrs\.asyncio\.base\..*"),
    (r"py:.*", r"wsrs\.asyncio\.keepalive\..*"),
    (r"py:class", r"(.*\.)?_[A-Za-z]\w*"),
    # How the standard library's own annotations spell its public classes.
    (
        r"py:class",
        r"_asyncio\.(Future|Task)|asyncio\.base_events\.Server|asyncio\.(events|protocols)\..*",
    ),
    # asyncio.Transport, as the base class of wsrs.asyncio.transport.NativeTransport.
    (r"py:class", r"asyncio\.transports\.Transport"),
    # uvicorn's types in wsrs.uvicorn's annotations: uvicorn publishes no inventory.
    (r"py:.*", r"uvicorn\..*|Config|ServerState|WebSocketScope|ClientDisconnected"),
]
intersphinx_mapping = {
    "python": (
        "https://docs.python.org/3",
        str(PYTHON_INVENTORY) if PYTHON_INVENTORY.exists() else None,
    ),
}

html_theme = "furo"
html_title = f"wsrs {release}"
html_static_path: list[str] = []

# Signatures show the names of types, and the descriptions the details.
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "show-inheritance": True}
# Type aliases named in annotations, documented on the reference pages.
autodoc_type_aliases = {
    "Handler": "wsrs.server.Handler",
    "ExtraHeaders": "wsrs.server.ExtraHeaders",
    "Serve": "wsrs.server.Serve",
    "Connect": "wsrs.client.Connect",
}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True

# The uvicorn protocol is being written beside this site. Its reference is generated from
# its docstrings as soon as the module is importable; until then the page keeps its prose.
HAS_UVICORN_MODULE = importlib.util.find_spec("wsrs.uvicorn") is not None
UVICORN_AUTODOC = """

Reference
---------

.. automodule:: wsrs.uvicorn
"""


def add_uvicorn_autodoc(app: Any, docname: str, source: list[str]) -> None:
    """Append the autodoc of :mod:`wsrs.uvicorn` to its page when the module exists."""
    if docname == "reference/uvicorn" and HAS_UVICORN_MODULE:
        source[0] += UVICORN_AUTODOC


def keep_attribute_summaries(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Keep napoleon from reading ``Summary: details`` as ``type: description``.

    Google style lets an attribute docstring start with its type and a colon; the docstrings
    of wsrs never do, and many summaries of attributes contain a colon. Napoleon reads only
    the first non-empty line that way, so an empty reST comment put first leaves the summary
    as written.
    """
    if what in ("attribute", "data", "property") and lines and ":" in lines[0]:
        lines[:0] = ["..", ""]


def setup(app: Any) -> None:
    app.connect("source-read", add_uvicorn_autodoc)
    # Before napoleon (priority 500), which rewrites the lines in the same event.
    app.connect("autodoc-process-docstring", keep_attribute_summaries, priority=400)
