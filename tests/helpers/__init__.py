"""Helpers of txsse's tests, imported one way: ``from tests.helpers.<module> import ...``.

- ``waiting``: :func:`~tests.helpers.waiting.until` (in the reactor) and
  :func:`~tests.helpers.waiting.block_until` (from a plain thread), the one polling helper;
- ``system``: a free loopback port, real programs (redis-server, chromium, twistd), stopping
  subprocesses;
- ``reading``: the one SSE body reader (:class:`~tests.helpers.reading.EventReader`) and the
  ways to open a stream over real HTTP;
- ``serving``: loopback event-stream servers (a recording resource, an upstream);
- ``memagent``, ``harness``: the in-memory agent and clock for deterministic client tests;
- ``paths``: run a client test on both HTTP paths (txsse's HTTP/1.1 client, Twisted's Agent);
- ``clocks``: :class:`~tests.helpers.clocks.HeldClock`, timeouts fired by hand on real sockets;
- ``memhttp``: a real ``Site`` over ``StringTransport`` for deterministic server tests, and
  the one HTTP/1.1 chunk decoder;
- ``sseserver``: a scripted loopback server for the client's loopback tests;
- ``rawclient``: clients on blocking sockets in threads (HTTP/1.1, HTTP/1.0, TLS, h2), for
  the server's loopback tests;
- ``blocking_server``: a loopback server in a reactor thread, for the blocking facade;
- ``redis``, ``hub``: a real redis-server, hub subprocesses, publishing;
- ``metrics``: scraping ``/metrics``; ``tls``: a self-signed certificate;
- ``chunking``, ``reference``: chunkings of a byte stream and the reference parser;
- ``docs``: the docs' runnable examples, and their complete programs run as processes;
- ``devtools``: a real headless Chromium page, driven over the DevTools protocol on a pipe.
"""
