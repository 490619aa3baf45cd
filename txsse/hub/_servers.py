"""RedisServers: the Redis servers of a hub group, each topic placed on one of them.

Placement is rendezvous (highest random weight) hashing of the topic name
with each server's name: every process given the same servers (in any
order) places every topic on the same server, and adding or removing a
server moves only the topics that land on, or lived on, that server.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

from twisted.application.service import MultiService
from twisted.internet.interfaces import IReactorTime

from txsse.hub._pubsub import shared_pubsub
from txsse.hub._redisconn import RedisConnection, RedisURL


def server_name(url: RedisURL) -> str:
    """The name placement hashes for a server: its URL without the password.

    :param url: the parsed URL.
    :returns: for example ``redis://10.0.0.5:6379/0``.
    """
    return str(url)


def server_names(urls: Sequence[RedisURL]) -> list[str]:
    """The names of a group's servers (see :func:`server_name`), each server once.

    :param urls: the parsed URLs.
    :returns: their names, in the same order.
    :raises ValueError: if a server is given twice.
    """
    names = [server_name(url) for url in urls]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"the Redis server {name} is given twice")
    return names


def _weight(server: str, topic: str) -> int:
    digest = hashlib.blake2b(f"{server}\n{topic}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def place(topic: str, servers: Sequence[str]) -> int:
    """The index of the server that holds ``topic`` (rendezvous hashing).

    :param topic: the topic name.
    :param servers: the servers' names (see :func:`server_name`).
    :returns: an index into ``servers``.
    :raises ValueError: if ``servers`` is empty.
    """
    if not servers:
        raise ValueError("no Redis server to place a topic on")
    return max(range(len(servers)), key=lambda i: _weight(servers[i], topic))


class ServerStatus(NamedTuple):
    """One Redis server as a process sees it (``/health``, metrics).

    :ivar server: its name (URL without password).
    :ivar connected: whether commands reach it now.
    :ivar connections: connections open to it now (commands and pub/sub).
    :ivar topics: topics whose pub/sub channel this process subscribes on it.
    """

    server: str
    connected: bool
    connections: int
    topics: int


class RedisServers(MultiService):
    """The connections of one process to every Redis server of its group.

    Start it (it is a service): it starts one command connection per server,
    and each server's pub/sub connection with it.

    :param urls: the servers, as ``redis://`` URLs or parsed; every process
        of a group must be given the same ones (in any order).
    :param reactor: provides the clock (``IReactorTime``) and the network
        (``IReactorTCP``, or ``IReactorUNIX`` for ``unix://`` URLs); the global
        reactor by default.
    :raises ValueError: for no URL, an invalid one, or the same server twice.
    """

    def __init__(
        self, urls: Sequence[str | RedisURL], *, reactor: IReactorTime | None = None
    ) -> None:
        super().__init__()
        if not urls:
            raise ValueError("give at least one Redis URL")
        self.connections = [RedisConnection(url, reactor=reactor) for url in urls]
        self.names = server_names([c.url for c in self.connections])
        for connection in self.connections:
            connection.setServiceParent(self)
            shared_pubsub(connection)

    def for_topic(self, topic: str) -> RedisConnection:
        """The command connection to the server that holds ``topic``.

        :param topic: the topic name.
        :returns: the same connection for the same topic in every process.
        """
        return self.connections[place(topic, self.names)]

    @property
    def connected(self) -> bool:
        """Whether every server answers commands now."""
        return all(c.connected for c in self.connections)

    def status(self) -> list[ServerStatus]:
        """How each server is doing, in the order given."""
        return [
            ServerStatus(name, c.connected, c.connections, shared_pubsub(c).channels)
            for name, c in zip(self.names, self.connections, strict=True)
        ]
