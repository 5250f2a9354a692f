"""Sphinx configuration of gridconv's documentation (`make docs` builds it strictly)."""

from __future__ import annotations

import os

import gridconv

project = "gridconv"
author = "the gridconv authors"
copyright = "2026, the gridconv authors"
release = version = gridconv.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "examples/README.rst", "gallery/*.ipynb"]
myst_heading_anchors = 3

# Docstrings are Google style with a few sections of our own; the signatures carry the types.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = ["Shape", "Weights", "Backward pass"]
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": False}
add_module_names = False
python_use_unqualified_type_names = True

# The example gallery: every docs/examples/plot_*.py runs at build time and its figures are
# shown on its page.
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "gallery",
    "filename_pattern": r"/plot_",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "matplotlib_animations": False,
    "run_stale_examples": True,  # every build runs every example: its figures are current
}
os.environ.setdefault("MPLBACKEND", "agg")

html_theme = "furo"
html_title = f"gridconv {version}"
html_static_path: list[str] = []
