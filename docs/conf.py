"""Sphinx configuration of the isstad-plugin documentation (MyST markdown, furo, autodoc + napoleon)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))  # the package is importable even without an editable install
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # importing anomalib/timm must never try the network

project = "isstad-plugin"
author = "isstad-plugin developers"
copyright = "isstad-plugin developers"  # noqa: A001 - Sphinx's name


def _version() -> str:
    for line in (ROOT / "pyproject.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    return "0.0.0"


release = version = _version()

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "scripts", "Thumbs.db", ".DS_Store"]

# MyST: ::: fences, $...$ maths, heading anchors for [text](#anchor) links, ```{directive} blocks.
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath", "fieldlist"]
myst_heading_anchors = 3

# autodoc / napoleon (Google style)
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_preserve_defaults = False
autodoc_default_options: dict[str, object] = {}  # every directive in api.md lists its own options
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" become a field list, not objects that clash with autodoc's own
napoleon_use_rtype = False
napoleon_attr_annotations = True

# HTML
html_theme = "furo"
html_title = f"isstad-plugin {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
html_theme_options = {"navigation_with_keys": True}


def _skip_member(app, what, name, obj, skip, options):  # noqa: ANN001, ANN202, ARG001
    """Hide the ``Alias for field number N`` properties of NamedTuples (their fields are listed in the docstring)."""
    doc = getattr(obj, "__doc__", None) or ""
    if what == "class" and isinstance(doc, str) and doc.startswith("Alias for field number"):
        return True
    return skip


def _no_inline_attribute_type(app, what, name, obj, options, lines):  # noqa: ANN001, ANN202, ARG001, PLR0913
    """Keep napoleon from reading ``"Text: more text"`` in a data/attribute/property docstring as ``"type: text"``.

    Napoleon takes everything before the first colon of such a docstring's first line as its type. The package's
    docstrings are prose ("Input side in pixels (paper 4.1.3: ...)"), and types come from the annotations; an empty
    type before a leading colon keeps the line whole. Runs before napoleon (priority 400 < 500).
    """
    if what in {"data", "attribute", "property"} and lines and lines[0].strip():
        lines[0] = ": " + lines[0]


def setup(app):  # noqa: ANN001, ANN201
    """Register the hooks."""
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-docstring", _no_inline_attribute_type, priority=400)
