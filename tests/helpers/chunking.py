"""Ways to cut a byte stream into chunks, and to feed them to a parser."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from txsse import Comment, Event, EventStreamParser
from txsse.errors import ParseError

Chunker = Callable[[bytes], list[bytes]]


def whole(stream: bytes) -> list[bytes]:
    """The stream as one chunk."""
    return [stream]


def bytewise(stream: bytes) -> list[bytes]:
    """One byte per chunk."""
    return [stream[i : i + 1] for i in range(len(stream))]


def random_chunker(seed: int) -> Chunker:
    """Cut at random places (seeded), with empty chunks thrown in now and then."""

    def chunk(stream: bytes) -> list[bytes]:
        rng = random.Random(seed)
        chunks: list[bytes] = []
        i = 0
        while i < len(stream):
            if rng.random() < 0.1:
                chunks.append(b"")
            size = rng.choice((1, 2, 3, rng.randint(1, 16), rng.randint(1, 64)))
            chunks.append(stream[i : i + size])
            i += size
        return chunks

    return chunk


#: Every table case runs once per entry: whole, byte by byte, and seeded random chunkings.
CHUNKERS: dict[str, Chunker] = {
    "whole": whole,
    "bytewise": bytewise,
    **{f"random{seed}": random_chunker(seed) for seed in range(4)},
}


def cut(stream: bytes, points: Iterable[int]) -> list[bytes]:
    """Cut ``stream`` at the given offsets (any order, repeats give empty chunks)."""
    chunks: list[bytes] = []
    start = 0
    for point in sorted(min(max(p, 0), len(stream)) for p in points):
        chunks.append(stream[start:point])
        start = point
    chunks.append(stream[start:])
    return chunks


def feed_all(parser: EventStreamParser, chunks: Iterable[bytes]) -> list[Event | Comment]:
    """Feed every chunk and return everything the parser produced, in order."""
    out: list[Event | Comment] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out


def feed_until_error(
    parser: EventStreamParser, chunks: Iterable[bytes]
) -> tuple[list[Event | Comment], ParseError | None]:
    """Like :func:`feed_all`, but stop at a ``ParseError``.

    :returns: everything produced (the error's ``events`` included) and the
        error, or ``None``.
    """
    out: list[Event | Comment] = []
    for chunk in chunks:
        try:
            out += parser.feed(chunk)
        except ParseError as error:
            return out + list(error.events), error
    return out, None
