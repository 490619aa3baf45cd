"""txsse: Server-Sent Events for Twisted.

The public API is re-exported here; the modules behind it are private.
"""

from txsse._client import EventSource
from txsse._event import Comment, Event
from txsse._format import format_comment, format_event
from txsse._parser import DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_LINE_LENGTH, EventStreamParser
from txsse._policy import Decision, StatusPolicy, resilient_policy, strict_policy
from txsse._protocol import EventStreamProtocol
from txsse._request import RequestAttempt
from txsse._signals import Opened, ReadyState, Received, Reconnect
from txsse._tls import pin_certificate, trust_certificate
from txsse._version import __version__

__all__ = [
    "DEFAULT_MAX_EVENT_SIZE",
    "DEFAULT_MAX_LINE_LENGTH",
    "Comment",
    "Decision",
    "Event",
    "EventSource",
    "EventStreamParser",
    "EventStreamProtocol",
    "Opened",
    "ReadyState",
    "Received",
    "Reconnect",
    "RequestAttempt",
    "StatusPolicy",
    "__version__",
    "format_comment",
    "format_event",
    "pin_certificate",
    "resilient_policy",
    "strict_policy",
    "trust_certificate",
]
