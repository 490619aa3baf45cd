# The twistd plugins: only the IServiceMakers live here; options and makeService
# are in txsse._tap and txsse._hubtap, imported when a plugin is used. There is no
# __init__.py under twisted/: this directory merges into Twisted's own twisted.plugins.
from twisted.application.service import ServiceMaker

sse = ServiceMaker(
    "txsse",
    "txsse._tap",
    "Consume a Server-Sent Events stream and write its events out, losing none.",
    "sse",
)

sse_hub = ServiceMaker(
    "txsse event hub",
    "txsse._hubtap",
    "HTTP hub: subscribe to /topics/<name>, publish with POST (memory or Redis Streams).",
    "sse-hub",
)
