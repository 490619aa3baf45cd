"""txsse: Server-Sent Events for Twisted.

The public API is re-exported here; the modules behind it are private.
"""

from txsse._event import Comment, Event
from txsse._format import format_comment, format_event
from txsse._parser import DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_LINE_LENGTH, EventStreamParser
from txsse._version import __version__
from txsse.client import (
    Decision,
    EventSource,
    EventStreamProtocol,
    Opened,
    ReadyState,
    Received,
    Reconnect,
    RequestAttempt,
    StatusPolicy,
    pin_certificate,
    resilient_policy,
    strict_policy,
    trust_certificate,
)

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
