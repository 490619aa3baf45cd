# The twistd plugins: only the IServiceMakers live here; options and makeService
# are in txsse.daemon._options and txsse.hub._options, imported when a plugin is
# used. There is no __init__.py under twisted/: this directory merges into
# Twisted's own twisted.plugins.
from twisted.application.service import ServiceMaker

sse = ServiceMaker(
    "txsse",
    "txsse.daemon._options",
    "Consume a Server-Sent Events stream and write its events out, losing none.",
    "sse",
)

sse_hub = ServiceMaker(
    "txsse event hub",
    "txsse.hub._options",
    "HTTP hub: subscribe to /topics/<name>, publish with POST (memory or Redis Streams).",
    "sse-hub",
)
