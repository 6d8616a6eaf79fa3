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
    """Whether ``error`` is a stub's own ``NotImplementedError("Exercise N.M: ...")``.

    Any other ``NotImplementedError`` (nn.Module raises one for a class whose
    ``forward`` is misspelt) is a failure of the learner's code, not work to do.
    """
    return isinstance(error, NotImplementedError) and str(error).startswith("Exercise ")


@functools.cache
def _library_roots() -> dict[str, str]:
    """Folders of code that is not the learner's, and their names ("" = the package's own)."""
    import sysconfig

    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    roots = {os.path.join(os.path.realpath(package), ""): "nfcourse"}
    paths = sysconfig.get_paths()
    for key in ("purelib", "platlib", "stdlib", "platstdlib"):
        name = "Python" if "std" in key else ""
        roots.setdefault(os.path.join(os.path.realpath(paths[key]), ""), name)
    return roots


def _library(filename: str) -> str | None:
    """The library a frame's file belongs to (``torch``, ``nfcourse``...), None if the learner's."""
    if filename.startswith("<"):  # a notebook cell or exec'd code, unless Python's frozen modules
        return "Python" if filename.startswith("<frozen") else None
    path = os.path.realpath(filename)
    for root, name in _library_roots().items():
        if path.startswith(root):
            return name or path[len(root) :].split(os.sep)[0].removesuffix(".py")
    return None


def _property_error(error: BaseException) -> tuple[BaseException, str | None]:
    """The real error of a property whose ``AttributeError`` ``__getattr__`` replaced.

    When a property raises ``AttributeError``, Python falls back to the class's
    ``__getattr__``; nn.Module's then reports the *property* as missing. Run the
    property's getter once more to recover the learner's own error.
    """
    import inspect

    if not isinstance(error, AttributeError) or error.__traceback__ is None:
        return error, None
    tb = error.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    obj, name = frame.f_locals.get("self"), frame.f_locals.get("name")
    if frame.f_code.co_name != "__getattr__" or not isinstance(name, str):
        return error, None
    getter = inspect.getattr_static(type(obj), name, None)
    if not isinstance(getter, property) or getter.fget is None:
        return error, None
    try:
        getter.fget(obj)
    except AttributeError as real:
        return real, name
    except Exception:  # noqa: BLE001 - keep the first error if the getter now fails otherwise
        return error, None
    return error, None


def _crash(label: str, error: Exception) -> Result:
    """The verdict on an error raised by the learner's code: where it is, and what it means."""
    if _is_stub(error):
        other = " ".join(str(error).split()[:2]).rstrip(":")  # "Exercise N.M"
        return Result(
            label,
            "not done",
            "replace the `raise NotImplementedError` with your code, "
            "run that cell, then this check again."
            if other == label
            else f"your code uses your solution of {other}, which is not done yet: "
            "do that exercise first, then run this check again.",
        )
    frames = traceback.extract_tb(error.__traceback__)
    if frames and frames[-1].name == "_forward_unimplemented":
        return Result(
            label,
            "failed",
            f"nn.Module found no `forward` method: calling your layer raised "
            f"NotImplementedError ({error}).",
            "check the spelling of your method names: the layer's map must be "
            "`def forward(self, z):`, indented inside the class.",
        )
    error, prop = _property_error(error)
    frames = traceback.extract_tb(error.__traceback__) or frames
    learners = [f for f in frames if _library(f.filename) is None]
    where = learners[-1] if learners else frames[-1]
    # where torch raised for the learner's line, say so (not for a missing attribute: the
    # lookup through nn.Module.__getattr__ is just how torch says the name does not exist)
    inside = _library(frames[-1].filename) if learners else None
    inside = None if isinstance(error, AttributeError) else inside
    return Result(
        label,
        "failed",
        f"your code raised {type(error).__name__}: {error}"
        + (f" (in the property `{prop}`)" if prop else ""),
        f"see line {where.lineno} of {where.name}()"
        + (f" (the error itself came from inside {inside}, called from there)" if inside else "")
        + "; run the exercise cell again after fixing it.",
    )


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
                result = _crash(label, error)
            show(result)
            if strict() and not result:
                raise CheckFailed(result.line)
            return result

        check.exercise = label
        return check

    return decorate
