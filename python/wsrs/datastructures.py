"""Headers and the grammar of their names and values: :class:`Headers`, the case-insensitive
multi-mapping of the opening handshake, and the RFC 7230 rules every parser and builder of
wsrs shares (:mod:`wsrs.http11` for messages, :mod:`wsrs.headers` for header values).

This module imports nothing else from wsrs, so :mod:`wsrs.exceptions` can use
:class:`Headers` without an import cycle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Protocol, TypeAlias, TypeVar, overload


__all__ = ["Headers", "HeadersLike", "MultipleValuesError"]

# RFC 7230 §3.2.6: token = 1*tchar
# tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|"
#         / "~" / DIGIT / ALPHA
TCHAR = r"-!#$%&'*+.^_`|~0-9a-zA-Z"
token_re = re.compile(f"[{TCHAR}]+")

# RFC 7230 §3.2: field-value = *( field-content / obs-fold )
# field-content = field-vchar [ 1*( SP / HTAB ) field-vchar ], field-vchar = VCHAR / obs-text
# Surrounding whitespace is stripped before matching, so allowing SP and HTAB anywhere is
# enough. obs-fold is rejected: it needs CR and LF, which aren't allowed.
# See also https://www.rfc-editor.org/errata/eid4189.
# The header lines wsrs receives are checked against the same grammar in Rust (src/http.rs,
# wsrs._core.parse_header_fields); tests/test_http11.py checks that both agree on every byte.
value_re = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
bvalue_re = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")

# RFC 7230 §3.2.3: OWS = *( SP / HTAB )
ows_re = re.compile(r"[\t ]*")

# RFC 7230 §3.2.6: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
# qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
# quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
quoted_string_re = re.compile(
    r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"'
)
unquote_re = re.compile(r"\\([\t\x20-\x7e\x80-\xff])")

# RFC 7230 §6.7: protocol = protocol-name ["/" protocol-version], both tokens.
protocol_re = re.compile(f"[{TCHAR}]+(?:/[{TCHAR}]+)?")


class MultipleValuesError(KeyError):
    """Raise when :class:`Headers` has several values for a name where one is expected."""

    def __str__(self) -> str:
        # KeyError shows repr(key); show the header name as is instead.
        return f"multiple values for header: {self.args[0]}" if self.args else ""


class _SupportsKeysAndGetItem(Protocol):
    """Describe dict-like objects with ``keys()`` and ``__getitem__()``, like ``dict`` does."""

    def keys(self) -> Iterable[str]: ...  # pragma: no cover

    def __getitem__(self, key: str, /) -> str: ...  # pragma: no cover


_T = TypeVar("_T")

_MISSING = object()


def _check_header(name: str, value: str) -> None:
    """Raise :exc:`ValueError` if a header can't be serialized as it is."""
    if not token_re.fullmatch(name):
        raise ValueError(f"invalid header name: {name!r}")
    # Rejecting CR and LF prevents header injection through application-provided values.
    if not value_re.fullmatch(value):
        raise ValueError(f"invalid header value: {value!r}")


class Headers(MutableMapping[str, str]):
    """Store HTTP headers: case-insensitive names, order and repeated headers preserved.

    It behaves like a :class:`dict` with case-insensitive keys as long as no header is
    repeated. With repeated headers:

    - ``headers[name]`` returns the value if there is exactly one, raises :exc:`KeyError` if
      there is none and :exc:`MultipleValuesError` (a :exc:`KeyError`) if there are several;
      :meth:`get`, :meth:`pop` and :meth:`setdefault` raise it too rather than guess;
    - ``headers[name] = value`` appends a header, even if ``name`` is already present;
    - ``del headers[name]`` removes every header called ``name``;
    - :meth:`get_all` returns all the values of a header and :meth:`raw_items` all the
      ``(name, value)`` pairs, in order, with names as they were written.

    Iterating yields each name once, lower-cased. Comparing with a :class:`Headers` or a
    mapping ignores the case of names and the order of different names.

    Setting a header checks that its name is a token and that its value contains only
    visible characters, spaces and tabs, so no value can inject a header.

    Args:
        *args: Headers, mappings or iterables of ``(name, value)`` pairs to add, in order.
        **kwargs: Headers to add after those.

    Raises:
        ValueError: If a name isn't a token or a value contains forbidden characters.
    """

    __slots__ = ("_dict", "_list")

    def __init__(self, *args: HeadersLike, **kwargs: str) -> None:
        self._dict: dict[str, list[str]] = {}
        self._list: list[tuple[str, str]] = []
        self.update(*args, **kwargs)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self._list!r})"

    def __str__(self) -> str:
        return "".join(f"{name}: {value}\r\n" for name, value in self._list) + "\r\n"

    def serialize(self) -> bytes:
        """Serialize the headers, each followed by CRLF, then the empty line that ends them.

        Returns:
            The header section of an HTTP/1.1 message.
        """
        # Values were checked to fit in ISO-8859-1, which maps characters to bytes one to one.
        return str(self).encode("latin-1")

    def copy(self) -> Headers:
        """Return a shallow copy that doesn't share state with the original.

        Returns:
            The copy.
        """
        copy = self.__class__()
        copy._dict = {key: values.copy() for key, values in self._dict.items()}
        copy._list = self._list.copy()
        return copy

    # Collection methods.

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._dict

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._dict == other._dict
        if isinstance(other, Mapping):
            lowered: dict[str, list[str]] = {}
            for key, value in other.items():
                if not isinstance(key, str):
                    return False
                lowered.setdefault(key.lower(), []).append(value)
            return self._dict == lowered
        return NotImplemented

    # Mapping methods.

    def __getitem__(self, key: str) -> str:
        values = self._dict[key.lower()]
        if len(values) > 1:
            raise MultipleValuesError(key)
        return values[0]

    def __setitem__(self, key: str, value: str) -> None:
        _check_header(key, value)
        self._add(key, value)

    def __delitem__(self, key: str) -> None:
        lower = key.lower()
        del self._dict[lower]
        # Deleting headers is rare, so a linear scan is good enough.
        self._list = [(name, value) for name, value in self._list if name.lower() != lower]

    @overload
    def get(self, key: str, /) -> str | None: ...

    @overload
    def get(self, key: str, default: str, /) -> str: ...

    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...

    def get(self, key: str, default: object = None, /) -> object:
        """Return the value of a header, or ``default`` if it is missing.

        Args:
            key: Header name.
            default: Value returned if the header is missing.

        Returns:
            The value of the header, or ``default``.

        Raises:
            MultipleValuesError: If there are several values.
        """
        values = self._dict.get(key.lower())
        if values is None:
            return default
        if len(values) > 1:
            raise MultipleValuesError(key)
        return values[0]

    @overload
    def pop(self, key: str, /) -> str: ...

    @overload
    def pop(self, key: str, default: str, /) -> str: ...

    @overload
    def pop(self, key: str, default: _T, /) -> str | _T: ...

    def pop(self, key: str, default: object = _MISSING, /) -> object:
        """Remove a header and return its value, or ``default`` if it is missing.

        Args:
            key: Header name.
            default: Value returned if the header is missing.

        Returns:
            The value of the header, or ``default``.

        Raises:
            KeyError: If the header is missing and there is no ``default``.
            MultipleValuesError: If there are several values; nothing is removed then.
        """
        value = self.get(key, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise KeyError(key)
            return default
        del self[key]
        return value

    def setdefault(self, key: str, default: str = "", /) -> str:
        """Return the value of a header, adding it with the value ``default`` if it is missing.

        Args:
            key: Header name.
            default: Value of the header if it is missing.

        Returns:
            The value of the header.

        Raises:
            MultipleValuesError: If there are several values.
        """
        value = self.get(key)
        if value is None:
            self[key] = value = default
        return value

    def clear(self) -> None:
        """Remove all headers."""
        self._dict = {}
        self._list = []

    def update(self, *args: HeadersLike, **kwargs: str) -> None:
        """Add headers, keeping the ones already present.

        Args:
            *args: Headers, mappings or iterables of ``(name, value)`` pairs to add, in order.
            **kwargs: Headers to add after those.

        Raises:
            ValueError: If a name isn't a token or a value contains forbidden characters.
        """
        for arg in args:
            items: Iterable[tuple[str, str]]
            if isinstance(arg, Headers):
                items = arg.raw_items()
            elif hasattr(arg, "keys"):
                mapping: _SupportsKeysAndGetItem = arg  # type: ignore[assignment]
                items = [(key, mapping[key]) for key in mapping.keys()]
            else:
                items = arg
            for name, value in items:
                self[name] = value
        for name, value in kwargs.items():
            self[name] = value

    # Methods for repeated headers.

    def get_all(self, key: str) -> list[str]:
        """Return the values of a header, in order.

        Args:
            key: Header name.

        Returns:
            A new list, empty if the header is missing.
        """
        return self._dict.get(key.lower(), []).copy()

    def raw_items(self) -> Iterator[tuple[str, str]]:
        """Return an iterator over all headers, in order, with names as they were written.

        Returns:
            An iterator of ``(name, value)`` pairs.
        """
        return iter(self._list)

    @classmethod
    def _parsed(cls, by_name: dict[str, list[str]], fields: list[tuple[str, str]]) -> Headers:
        """Headers from valid ``fields`` (``(name, value)`` pairs, in order) and
        ``by_name``, the values of each lowercased name in that order (what
        ``wsrs._core.parse_header_fields`` returns); they are kept, not copied."""
        headers = cls()
        headers._dict = by_name
        headers._list = fields
        return headers

    def _add(self, name: str, value: str) -> None:
        """Append a header that is known to be valid."""
        self._dict.setdefault(name.lower(), []).append(value)
        self._list.append((name, value))


HeadersLike: TypeAlias = (
    Headers | Mapping[str, str] | _SupportsKeysAndGetItem | Iterable[tuple[str, str]]
)
"""Types accepted where :class:`Headers` are expected."""
