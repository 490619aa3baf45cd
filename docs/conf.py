import inspect
import sys
import typing
from pathlib import Path

import sphinx.util.inspect
import sphinx.util.typing
from zope.interface.interface import InterfaceClass

HERE = Path(__file__).resolve().parent

project = "txsse"
author = "the txsse developers"
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.intersphinx"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "_inv", "diagrams"]
myst_heading_anchors = 3
html_theme = "alabaster"

# The API reference (docs/api/): docstrings are reST field lists; types go with the parameters.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"show-inheritance": True}
nitpicky = False

# Links to Twisted's and treq's API docs, from inventories kept in docs/_inv (made by
# docs/_inv/make.py from the installed packages): the build never uses the network.
intersphinx_mapping = {
    "twisted": ("https://docs.twisted.org/en/stable/api/", str(HERE / "_inv" / "twisted.inv")),
    "treq": ("https://treq.readthedocs.io/en/stable/", str(HERE / "_inv" / "treq.inv")),
}


# zope.interface interfaces are not classes, so Sphinx would show their repr
# ("<InterfaceClass twisted.web.resource.IResource>") in the parameter types that
# autodoc_typehints = "description" writes: show the dotted name. Modules that imported
# stringify_annotation by name hold their own reference, so each copy is replaced.
# (sphinx.util.typing.restify, used for "Bases:", needs no patch: no documented class
# derives from an interface.)
def _stringify_interfaces(original):
    def stringify(annotation, *args, **kwargs):
        if isinstance(annotation, InterfaceClass):
            prefix = "~" if (args[:1] or [kwargs.get("mode")])[0] == "smart" else ""
            return f"{prefix}{annotation.__module__}.{annotation.__name__}"
        return original(annotation, *args, **kwargs)

    return stringify


_ORIGINAL = sphinx.util.typing.stringify_annotation
_PATCHED = _stringify_interfaces(_ORIGINAL)
import sphinx.ext.autodoc  # noqa: E402  (load autodoc's modules, then patch their copies)

for _module in list(sys.modules.values()):
    if getattr(_module, "stringify_annotation", None) is _ORIGINAL:
        _module.stringify_annotation = _PATCHED


# Sphinx resolves the string annotations of a class's signature with get_type_hints(cls),
# which holds the class's attributes, not __init__'s parameters: resolve those from __init__,
# so that a parameter's type links to the right class, not to every class of that name.
def _class_signature(original):
    def signature(subject, *args, **kwargs):
        result = original(subject, *args, **kwargs)
        init = getattr(subject, "__init__", None) if inspect.isclass(subject) else None
        try:
            hints = typing.get_type_hints(init) if inspect.isfunction(init) else {}
        except Exception:
            return result
        parameters = [
            p.replace(annotation=hints[p.name])
            if p.name in hints and isinstance(p.annotation, str)
            else p
            for p in result.parameters.values()
        ]
        return result.replace(parameters=parameters)

    return signature


sphinx.util.inspect.signature = _class_signature(sphinx.util.inspect.signature)


# A NamedTuple's fields are documented in the class docstring (:ivar:); their generated
# "Alias for field number N" entries would only repeat them.
def _skip_tuple_fields(app, what, name, obj, skip, options):
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_tuple_fields)
