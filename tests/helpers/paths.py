"""Run a client test on both HTTP paths: txsse's own HTTP/1.1 client and Twisted's Agent."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor

from txsse.client._wire import twisted_agent

#: The two paths: ``"http11"`` (the default, no ``agent=``) and ``"agent"``
#: (``agent=`` a ``twisted.web.client.Agent``, as a user passing their own).
PATHS = ("http11", "agent")


def options_for(path: str, **kw: Any) -> dict[str, Any]:
    """``EventSource`` keyword arguments that select ``path``.

    :param path: one of :data:`PATHS`.
    :param kw: the test's own options (a ``tls=`` moves into the Agent on the Agent path).
    :returns: the options.
    """
    if path == "agent":
        kw["agent"] = twisted_agent(reactor, kw.pop("tls", None))
    return kw
