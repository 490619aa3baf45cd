# The twistd plugin: only the IServiceMaker lives here; options and makeService
# are in txsse._tap, imported when the plugin is used. There is no __init__.py
# under twisted/: this directory merges into Twisted's own twisted.plugins.
from twisted.application.service import ServiceMaker

sse_hub = ServiceMaker(
    "txsse event hub",
    "txsse._hubtap",
    "HTTP hub: subscribe to /topics/<name>, publish with POST (memory or Redis Streams).",
    "sse-hub",
)
