"""Structural types for the Twisted interfaces the client uses.

``zope.interface`` interfaces do not type-check as classes without a mypy
plugin; these ``Protocol`` classes describe the same methods for ``mypy
--strict``. Any provider of the matching Twisted interface fits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.web.http_headers import Headers


class DelayedCall(Protocol):
    """An ``IDelayedCall``."""

    def active(self) -> bool: ...
    def cancel(self) -> None: ...


class Clock(Protocol):
    """The part of ``IReactorTime`` the client uses."""

    def seconds(self) -> float: ...
    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: object, **kw: object
    ) -> DelayedCall: ...


class Response(Protocol):
    """The part of ``IResponse`` the client uses."""

    @property
    def code(self) -> int: ...
    @property
    def headers(self) -> Headers: ...
    def deliverBody(self, protocol: Any) -> None: ...


class Agent(Protocol):
    """An ``IAgent``."""

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: Any = None,
    ) -> Deferred[Any]: ...


class TLSPolicy(Protocol):
    """An ``IPolicyForHTTPS``: TLS settings per server."""

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any: ...
