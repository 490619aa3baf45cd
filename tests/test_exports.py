"""The public API names are importable from the package root."""

import txsse


def test_all_names_importable() -> None:
    """Every name in ``txsse.__all__`` exists."""
    for name in txsse.__all__:
        assert hasattr(txsse, name), name
