"""Sphinx configuration of the fedrl_lightning documentation (``sphinx-build -W docs OUT``)."""

project = "fedrl_lightning"
author = "the fedrl_lightning authors"
copyright = "the fedrl_lightning authors, Apache-2.0"

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]

# Markdown: headings get GitHub's anchors, so `page.md#a-heading` links work on GitHub and here.
myst_heading_anchors = 3

# Docstrings are Google style. A class's "Attributes:" become fields of the class, not
# entries of their own, so a NamedTuple's fields are not described twice.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"

html_theme = "furo"
html_title = "fedrl_lightning"
