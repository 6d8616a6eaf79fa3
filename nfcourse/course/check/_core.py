"""The machinery of the exercise checks: one verdict per exercise, never a crash.

A check runs the learner's code against the reference implementation and
against properties (shapes, invertibility, log-det vs the autograd Jacobian),
then shows a one-line verdict and returns a :class:`Result` (truthy when
passed):

- ``passed``: everything the check tried agreed;
- ``not done``: the learner's code still raises the exercise stub's
  ``NotImplementedError``; Run All goes on;
- ``failed``: something disagreed; the hint names the likely mistake.

In strict mode (environment variable ``NFCOURSE_STRICT=1``, used when the test
suite runs the solution notebooks) a verdict other than ``passed`` raises
:class:`CheckFailed`, so a broken solution fails CI.

The verdict is displayed as a bundle of three representations: ``text/html``
(a coloured box with the verdict in words, the exercise, the message and the
hint, for JupyterLab), ``text/plain`` (the one-line :attr:`Result.line`, for
consoles), and an extra MIME type, ``MIME``, that carries the result as JSON:
``python -m nfcourse check`` reads it from an executed notebook to write its
report.
"""

from __future__ import annotations

import functools
import os
import re
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from html import escape

MIME = "application/vnd.nfcourse.check+json"
ICONS = {"passed": "✅", "not done": "⏳", "failed": "❌"}
SAYS = {"passed": "passed", "not done": "not done yet", "failed": "failed"}

# The verdict box: the verdict in words (colour is never the only cue) and one
# colour per verdict. Each colour carries white text at a contrast of at least
# 4.5:1 and stands at least 3:1 from JupyterLab's light (#fff) and dark (#111)
# backgrounds (tests/test_verdicts.py computes both). The box's own text keeps
# the theme's colour over a light tint of the verdict's colour, so it reads in
# either theme. Only inline styles with hex/rgba colours: they survive
# JupyterLab's sanitizer when a notebook is reopened untrusted.
WORDS = {"passed": "Passed", "not done": "Not done yet", "failed": "Failed"}
COLOURS = {"passed": "#1a7f37", "not done": "#a15c00", "failed": "#c62828"}
TINT = 0.12  # opacity of the box's background tint


class CheckFailed(AssertionError):
    """Raised in strict mode when an exercise check does not pass."""


class Mistake(Exception):
    """Raised inside a check body: what went wrong and a hint at the likely cause."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass
class Result:
    """The verdict of one exercise check; truthy when the exercise passed."""

    exercise: str
    status: str  # "passed", "not done" or "failed"
    message: str
    hint: str = ""

    def __bool__(self) -> bool:
        return self.status == "passed"

    @property
    def line(self) -> str:
        text = f"{ICONS[self.status]} {self.exercise} {SAYS[self.status]}: {self.message}"
        return f"{text} Hint: {self.hint}" if self.hint else text

    @property
    def html(self) -> str:
        """The verdict as an HTML box (every piece of text escaped)."""
        return verdict_html(self)

    def __repr__(self) -> str:
        return f"Result({self.exercise!r}, {self.status!r})"

    def _ipython_display_(self) -> None:
        # A check shows its verdict itself; when the check call is also the cell's
        # last value, IPython would show it a second time: skip that one.
        if self.__dict__.pop("_just_shown", False):
            return
        show(self)


def strict() -> bool:
    """Whether failing checks raise (``NFCOURSE_STRICT`` set to 1/true/yes)."""
    return os.environ.get("NFCOURSE_STRICT", "").lower() in {"1", "true", "yes"}


def _rich_text(text: str) -> str:
    """Escape ``text`` for HTML; then show its `backticked` spans as code."""
    return re.sub(r"`([^`\n]+)`", r"<code>\1</code>", escape(text, quote=True))


def _rgba(colour: str, alpha: float) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def verdict_html(result: Result) -> str:
    """The verdict box: the verdict in words on a coloured label, the exercise, message, hint."""
    colour, word = COLOURS[result.status], WORDS[result.status]
    kind = result.status.replace(" ", "-")
    exercise = escape(result.exercise, quote=True)
    text = "white-space: pre-wrap; overflow-wrap: break-word; margin-top: 0.25em"
    parts = [
        f'<div class="nfcourse-verdict nfcourse-verdict-{kind}" role="status" '
        f'aria-label="{exercise}: {word}" style="border: 1px solid {colour}; '
        f"border-left: 6px solid {colour}; border-radius: 4px; "
        f"background-color: {_rgba(colour, TINT)}; padding: 0.45em 0.8em; "
        f'margin: 0.2em 0; line-height: 1.45">',
        f'<div class="nfcourse-verdict-title"><span class="nfcourse-verdict-word" '
        f'style="background-color: {colour}; color: #ffffff; font-weight: bold; '
        f'border-radius: 3px; padding: 0.05em 0.5em; margin-right: 0.5em">{word}</span>'
        f'<span class="nfcourse-verdict-exercise" style="font-weight: bold">{exercise}</span>'
        "</div>",
    ]
    if result.message:
        parts.append(
            f'<div class="nfcourse-verdict-message" style="{text}">'
            f"{_rich_text(result.message)}</div>"
        )
    if result.hint:
        parts.append(
            f'<div class="nfcourse-verdict-hint" style="{text}">'
            f"<strong>Hint:</strong> {_rich_text(result.hint)}</div>"
        )
    parts.append("</div>")
    return "".join(parts)


def show(result: Result) -> None:
    """Show the verdict: HTML for JupyterLab, a line for consoles, JSON for ``nfcourse check``."""
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            bundle = {"text/plain": result.line, "text/html": result.html, MIME: asdict(result)}
            display(bundle, raw=True)
            result._just_shown = True
            return
    except ImportError:  # pragma: no cover - IPython comes with JupyterLab
        pass
    print(result.line)


def _is_stub(error: BaseException) -> bool:
    return isinstance(error, NotImplementedError)


def exercise(label: str) -> Callable:
    """Decorate a check body ``fn(*args) -> str`` (the success message) for exercise ``label``.

    The body raises :class:`Mistake` for a wrong answer; the learner's code may
    raise anything. The decorated check shows the verdict, returns the
    :class:`Result`, and raises :class:`CheckFailed` in strict mode unless passed.
    """

    def decorate(body: Callable[..., str]) -> Callable[..., Result]:
        @functools.wraps(body)
        def check(*args, **kwargs) -> Result:
            try:
                result = Result(label, "passed", body(*args, **kwargs))
            except Mistake as mistake:
                result = Result(label, "failed", mistake.message, mistake.hint)
            except Exception as error:  # noqa: BLE001 - any error in learner code is a verdict
                if _is_stub(error):
                    result = Result(
                        label,
                        "not done",
                        "replace the `raise NotImplementedError` with your code, "
                        "run that cell, then this check again.",
                    )
                else:
                    where = traceback.extract_tb(error.__traceback__)[-1]
                    result = Result(
                        label,
                        "failed",
                        f"your code raised {type(error).__name__}: {error}",
                        f"see line {where.lineno} of {where.name}(); run the exercise cell "
                        "again after fixing it.",
                    )
            show(result)
            if strict() and not result:
                raise CheckFailed(result.line)
            return result

        check.exercise = label
        return check

    return decorate
