"""The value types the parser produces: :class:`Event` and :class:`Comment`."""

from __future__ import annotations

import json as _json
from typing import Any, NamedTuple


class Event(NamedTuple):
    """One dispatched server-sent event (immutable).

    An ``Event`` is a named tuple, which makes it as cheap to build as a tuple
    (the parser creates millions per second), but it compares equal only to
    another ``Event``.

    :ivar data: the event's data; lines are joined with LF.
    :ivar event: the event type, ``"message"`` when the server sent none.
    :ivar id: the stream's last event ID when this event was dispatched (it
        persists from earlier events until an ``id:`` field changes it).
    :ivar retry: the ``retry:`` value (milliseconds) received in this event's
        own block, or ``None``.
    """

    data: str = ""
    event: str = "message"
    id: str = ""
    retry: int | None = None

    @property
    def lines(self) -> list[str]:
        """The data split into its lines."""
        return self.data.split("\n")

    def json(self, **kwargs: Any) -> Any:
        """Decode the data as JSON.

        :param kwargs: passed to :func:`json.loads`.
        :raises json.JSONDecodeError: if the data is not valid JSON.
        """
        return _json.loads(self.data, **kwargs)

    def __eq__(self, other: object) -> bool:
        return type(other) is Event and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return tuple.__hash__(self)

    def __repr__(self) -> str:
        return (
            f"Event(data={self.data!r}, event={self.event!r}, id={self.id!r}, retry={self.retry!r})"
        )


class Comment(NamedTuple):
    """A comment line (``:`` followed by text); servers send them as keep-alives.

    :ivar text: everything after the colon, unmodified.
    """

    text: str

    def __eq__(self, other: object) -> bool:
        return type(other) is Comment and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return tuple.__hash__(self)
