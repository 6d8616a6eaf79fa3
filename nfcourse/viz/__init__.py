"""Pictures: plots (matplotlib) and slider explorers (ipywidgets).

Importing :mod:`nfcourse` does not load this package; ``from nfcourse import
plots, widgets`` does, when a lesson first asks for it.
"""
