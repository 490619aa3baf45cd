"""Packaging for txsse: Server-Sent Events for Twisted."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _version() -> str:
    for line in (HERE / "txsse" / "_version.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip('"')
    raise RuntimeError("txsse/_version.py has no __version__")


setup(
    name="txsse",
    version=_version(),
    description="Server-Sent Events (EventSource) for Twisted: client, server, daemon",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    # ``package_dir`` keeps editable installs exposing ``twisted/plugins`` (a
    # namespace directory without ``__init__.py``) next to Twisted's own.
    package_dir={"": "."},
    packages=[*find_packages(include=["txsse", "txsse.*"]), "twisted.plugins"],
    package_data={"txsse": ["py.typed"]},
    include_package_data=False,
    # What the library imports (tests/test_requirements.py checks it).
    install_requires=[
        # [tls]: pyOpenSSL, service-identity and idna, for the client's TLS.
        "twisted[tls]>=24.7.0",
        "zope.interface>=5",
        # EventSource accepts a treq client.
        "treq>=24.9.1",
        # the client's HTTP/1.1 response parser (llhttp's C binding, as uvicorn uses)
        "httptools>=0.6",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-twisted>=1.14",
            "hypothesis>=6.100",
            # the Redis channel and hub tests (against a real redis-server)
            "txredisapi>=1.6.0",
            "hiredis>=2.0",
            # the metrics tests
            "prometheus-client>=0.17",
            # HTTP/2 for the server's browser test (h2 and priority).
            "twisted[http2]",
        ],
        # txsse.metrics and `--metrics` of the twistd plugins: Prometheus metrics.
        "metrics": ["prometheus-client>=0.17"],
        # RedisStreamChannel / `twistd sse-hub --redis`: txredisapi speaks RESP
        # over Twisted; hiredis is its C reply parser (much faster than Python).
        "redis": ["txredisapi>=1.6.0", "hiredis>=2.0"],
        # Pinned to the versions the code was last checked with, so that a new release
        # of a linter cannot turn the build red by itself; upgrade them on purpose.
        "lint": ["ruff==0.17.6", "mypy==2.4.1", "mypy-zope==1.0.17"],
        # docs/conf.py adapts Sphinx internals (checked on 9.0): no Sphinx release it has not met.
        "docs": ["sphinx>=7,<10", "myst-parser>=3"],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Typing :: Typed",
    ],
)
