"""Sphinx settings of the course's site (built by website/build.py, which stages the pages)."""

import os

project = "nfcourse"
author = "the nfcourse maintainers"
copyright = "the nfcourse maintainers"
extensions = ["myst_nb"]
exclude_patterns = ["exercises/**"]  # downloads, not pages
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# Every lesson runs at build time; one that raises fails the build (-W).
nb_execution_mode = "cache"
nb_execution_cache_path = os.environ.get("NFCOURSE_SITE_CACHE", "")
nb_execution_timeout = 900  # seconds per cell: generous, for a slow or busy machine
nb_execution_raise_on_error = True
nb_execution_show_tb = True

# The checks' verdicts as their HTML (the course's own MIME type is for JupyterLab); a
# slider explorer as its line of text (a widget needs a running kernel, and its
# JavaScript would come from a CDN).
nb_mime_priority_overrides = [
    ("html", "application/vnd.nfcourse.check+json", None),
    ("html", "application/vnd.jupyter.widget-view+json", None),
]
nb_ipywidgets_js = {}
# myst-nb still says it skips the course's MIME type in every check's output, which -W would
# turn into an error: the skip is the point (the HTML of the same output is shown instead).
suppress_warnings = ["mystnb.unknown_mime_type"]

html_theme = "sphinx_book_theme"
html_title = "nfcourse: normalizing flows, hands on"
html_theme_options = {"show_toc_level": 2, "use_download_button": True}

# Math without the internet: the MathJax 2 copy of jupyter-server-mathjax, which
# website/build.py puts in the static folder (Sphinx would load MathJax from a CDN).
html_static_path = [os.environ["NFCOURSE_SITE_STATIC"]]
# The front page's lesson pictures (raw HTML in the README's table), copied as they are.
html_extra_path = [os.environ["NFCOURSE_SITE_EXTRA"]]
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
# That copy carries the STIX-Web fonts only (as JupyterLab's own MathJax 2 setting). MyST
# marks its pages tex2jax_ignore so that only its math elements (class "math") are typeset.
mathjax2_config = {
    "tex2jax": {
        "processClass": "tex2jax_process|mathjax_process|math|output_area",
        "ignoreClass": "tex2jax_ignore|mathjax_ignore|document",
    },
    "HTML-CSS": {"availableFonts": [], "webFont": "STIX-Web", "imageFont": None},
    "SVG": {"font": "STIX-Web"},
}
