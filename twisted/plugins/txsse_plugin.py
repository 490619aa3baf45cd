# The twistd plugin: only the IServiceMaker lives here; options and makeService
# are in txsse._tap, imported when the plugin is used. There is no __init__.py
# under twisted/: this directory merges into Twisted's own twisted.plugins.
from twisted.application.service import ServiceMaker

sse = ServiceMaker(
    "txsse",
    "txsse._tap",
    "Consume a Server-Sent Events stream and write its events out, losing none.",
    "sse",
)
