"""Consuming event streams: the protocol, :class:`EventSource` and what shapes it.

The public API is re-exported here (and, for the most used names, from
:mod:`txsse`); the modules behind it are private.
"""

from txsse.client._policy import Decision, StatusPolicy, resilient_policy, strict_policy
from txsse.client._protocol import EventStreamProtocol
from txsse.client._request import RequestAttempt
from txsse.client._signals import Opened, ReadyState, Received, Reconnect, Signal
from txsse.client._source import EventSource
from txsse.client._tls import pin_certificate, trust_certificate

__all__ = [
    "Decision",
    "EventSource",
    "EventStreamProtocol",
    "Opened",
    "ReadyState",
    "Received",
    "Reconnect",
    "RequestAttempt",
    "Signal",
    "StatusPolicy",
    "pin_certificate",
    "resilient_policy",
    "strict_policy",
    "trust_certificate",
]
