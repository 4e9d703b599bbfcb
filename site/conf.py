"""Sphinx configuration of the course's website (built by scripts/site.py: `make site`)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import plotly

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

project = "dmlcourse"
author = "the dmlcourse authors"
copyright = "2026, the dmlcourse authors"
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# scripts/site.py executes the lectures (quick or full mode) before Sphinx renders them.
nb_execution_mode = "off"
nb_merge_streams = True
# no widget manager from a CDN: widgets are static stand-ins (dmlcourse/site.py)
nb_ipywidgets_js = {}
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]

html_theme = "sphinx_book_theme"
html_title = "dmlcourse: deep metric learning, hands on"
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
}
html_static_path = ["_static"]
# no copies of the executed notebooks (_sources/, 11 MiB): the page is the lecture, and the
# notebooks come with the course (make lab)
html_copy_source = False
html_show_sourcelink = False
html_css_files = ["dmlcourse.css"]
# plotly.js once for the whole site (no CDN); every figure's HTML expects window.Plotly
html_js_files = [("plotly.min.js", {"priority": 200})]
# MathJax from the site itself (no CDN): the files of the sphinx-mathjax-offline package
mathjax_path = "mathjax/tex-chtml.js"

_static = Path(__file__).parent / "_static"
_static.mkdir(exist_ok=True)
shutil.copyfile(
    Path(plotly.__file__).parent / "package_data" / "plotly.min.js", _static / "plotly.min.js"
)


def _copy_mathjax(app, exc):
    if exc is not None:
        return
    import importlib.util

    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    src = Path(spec.origin).parent / "static" / "mathjax"
    dst = Path(app.outdir) / "_static" / "mathjax"
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "tex-chtml.js", dst / "tex-chtml.js")
    shutil.copytree(
        src / "output" / "chtml" / "fonts" / "woff-v2",
        dst / "output" / "chtml" / "fonts" / "woff-v2",
        dirs_exist_ok=True,
    )


html_context = {"default_mode": "light"}


def setup(app):
    app.connect("build-finished", _copy_mathjax)
