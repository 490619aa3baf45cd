"""twistd plugins of txsse (no ``__init__.py`` here: ``twisted.plugins`` is Twisted's)."""

from twisted.application.service import ServiceMaker

sse_hub = ServiceMaker(
    "txsse event hub",
    "txsse._hubtap",
    "HTTP hub: subscribe to /topics/<name>, publish with POST (memory or Redis)",
    "sse-hub",
)
