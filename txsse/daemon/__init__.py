"""``twistd sse``: consume an event stream and write its events out, losing none.

The command line is the public face of this package (see ``docs/daemon.md``);
:class:`SSEDaemon` is the service behind it, for embedding in another application.
"""

from txsse.daemon._service import SSEDaemon

__all__ = ["SSEDaemon"]
