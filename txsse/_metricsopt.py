"""The ``--metrics PORT-DESCRIPTION`` option shared by the twistd plugins.

Parsing it never imports ``prometheus_client``: it only checks that the package
is installed and that the endpoint string parses. The metrics themselves are
set up by ``makeService``, and only when the option is given.
"""

from __future__ import annotations

import importlib.util

from twisted.internet.endpoints import serverFromString
from twisted.python import usage

#: The option's help text.
HELP = (
    "Serve Prometheus metrics at /metrics on this Twisted endpoint, for example "
    "tcp:9100:interface=127.0.0.1 (needs txsse[metrics]) [default: none]."
)


def check_metrics_option(description: str) -> str:
    """Validate a ``--metrics`` value.

    :param description: a Twisted server endpoint string.
    :returns: the description.
    :raises usage.UsageError: when prometheus-client is not installed or the
        endpoint string cannot be parsed.
    """
    if importlib.util.find_spec("prometheus_client") is None:
        raise usage.UsageError("--metrics needs prometheus-client: pip install 'txsse[metrics]'")
    try:
        serverFromString(None, description)  # type: ignore[no-untyped-call]
    except Exception as error:
        raise usage.UsageError(
            f"--metrics {description!r} is not a server endpoint ({error}); "
            "use for example tcp:9100:interface=127.0.0.1"
        ) from None
    return description


__all__ = ["HELP", "check_metrics_option"]
