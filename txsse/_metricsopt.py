"""The ``--metrics PORT-DESCRIPTION`` option shared by the twistd plugins.

Parsing it never imports ``prometheus_client``: it only checks that the package
is installed and that the endpoint string parses. The metrics themselves are
set up by ``makeService``, and only when the option is given.
"""

from __future__ import annotations

import importlib.util

from twisted.application.service import IService
from twisted.python import usage

from txsse._cli import ListeningService, check_endpoint

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
    return check_endpoint("--metrics", description, "tcp:9100:interface=127.0.0.1")


def metrics_option_service(description: str) -> IService:
    """The service behind ``--metrics``: ``/metrics`` on the endpoint the option names.

    Imports :mod:`txsse._metrics` (and so ``prometheus_client``): call it only
    when the option is given. A port in use ends twistd with one line naming
    the option (see :class:`~txsse._cli.ListeningService`).

    :param description: the option's value, checked by :func:`check_metrics_option`.
    :returns: the service.
    """
    from txsse._metrics import metrics_site

    return ListeningService("--metrics", description, metrics_site())


__all__ = ["HELP", "check_metrics_option", "metrics_option_service"]
