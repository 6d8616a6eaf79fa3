"""How a check's verdict is shown: an HTML box in JupyterLab, one line in a console, JSON for
``python -m nfcourse check``."""

from __future__ import annotations

import json
from dataclasses import asdict
from html.parser import HTMLParser

import IPython
import IPython.display
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nfcourse.course.check import MIME, Result
from nfcourse.course.check import _core as core

STATUSES = {"passed": "Passed", "not done": "Not done yet", "failed": "Failed"}


class Box(HTMLParser):
    """The parts of a verdict box: its tags, the class of each element, the text of each part."""

    def __init__(self, markup: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[dict] = []
        self.open: list[str] = []  # the classes of the open elements
        self.text: dict[str, str] = {}  # class -> its text (nested text counts for each)
        self.feed(markup)
        self.close()
        assert not self.open, f"unclosed elements: {self.open}"

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.append(dict(attrs))
        self.open.append(dict(attrs).get("class", ""))

    def handle_endtag(self, tag):
        self.open.pop()

    def handle_data(self, data):
        for cls in self.open:
            for name in cls.split():
                self.text[name] = self.text.get(name, "") + data


def result(status: str = "failed", message: str = "wrong sign", hint: str = "flip it") -> Result:
    return Result("Exercise 1.1", status, message, hint)


@pytest.mark.parametrize("status", STATUSES)
def test_the_box_says_the_verdict_in_words_with_the_exercise_message_and_hint(status):
    box = Box(result(status).html)
    kind = status.replace(" ", "-")
    outer = box.attrs[0]
    assert outer["class"] == f"nfcourse-verdict nfcourse-verdict-{kind}"
    assert outer["role"] == "status" and outer["aria-label"] == f"Exercise 1.1: {STATUSES[status]}"
    assert box.text["nfcourse-verdict-word"] == STATUSES[status]
    assert box.text["nfcourse-verdict-exercise"] == "Exercise 1.1"
    assert box.text["nfcourse-verdict-message"] == "wrong sign"
    assert box.text["nfcourse-verdict-hint"] == "Hint: flip it"
    # the hint comes after the message
    html = result(status).html
    assert html.index("nfcourse-verdict-message") < html.index("nfcourse-verdict-hint")


def test_the_three_verdicts_differ_in_words_and_colour():
    boxes = [result(s).html for s in STATUSES]
    assert len({Box(b).text["nfcourse-verdict-word"] for b in boxes}) == 3
    assert len(set(core.COLOURS.values())) == 3
    for status, markup in zip(STATUSES, boxes, strict=True):
        assert core.COLOURS[status] in markup
    assert not any(icon in "".join(boxes) for icon in core.ICONS.values())  # no emoji font needed


def test_no_hint_no_hint_line():
    box = Box(result("passed", "all 5 properties hold", "").html)
    assert "nfcourse-verdict-hint" not in box.text and "Hint" not in result("passed", hint="").html


def test_learner_text_is_escaped():
    """An exception message (learner's code) or a hint cannot inject markup into the page."""
    evil = 'your code raised ValueError: <img src=x onerror="alert(1)"> & </div><script>x</script>'
    hint = "<b>bold</b> 'quotes' \"double\""
    exercise = 'Exercise <i>"9.9"</i>'
    markup = Result(exercise, "failed", evil, hint).html
    box = Box(markup)
    assert set(box.tags) <= {"div", "span", "strong"}
    assert box.text["nfcourse-verdict-message"] == evil  # shown as text, exactly
    assert box.text["nfcourse-verdict-hint"] == f"Hint: {hint}"
    assert box.text["nfcourse-verdict-exercise"] == exercise
    assert box.attrs[0]["aria-label"] == f"{exercise}: Failed"
    assert "<img" not in markup and "<script" not in markup and "<b>" not in markup


def test_backticked_code_shows_as_code_and_stays_escaped():
    markup = result("not done", "replace the `raise NotImplementedError` with your code",
                    "use `a<b` here").html
    assert "<code>raise NotImplementedError</code>" in markup
    assert "<code>a&lt;b</code>" in markup
    box = Box(markup)
    assert box.text["nfcourse-verdict-message"] == (
        "replace the raise NotImplementedError with your code"
    )


def test_long_words_wrap_only_where_they_must():
    """Text wraps between words (the plain-text output broke words anywhere)."""
    markup = result().html
    assert "overflow-wrap: break-word" in markup
    assert "break-all" not in markup and "monospace" not in markup


# --- contrast (WCAG 2.x relative luminance) ---------------------------------------------------

LIGHT_BACKGROUND, DARK_BACKGROUND = "#ffffff", "#111111"  # JupyterLab Light / Dark, layout 0


def _rgb(colour: str) -> tuple[float, ...]:
    return tuple(int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))


def _luminance(rgb) -> float:
    c = [x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4 for x in rgb]
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]


def _contrast(a, b) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _over(top, alpha: float, bottom):
    return tuple(alpha * t + (1 - alpha) * b for t, b in zip(top, bottom, strict=True))


@pytest.mark.parametrize("status", STATUSES)
def test_colours_have_accessible_contrast_in_light_and_dark_themes(status):
    colour = _rgb(core.COLOURS[status])
    white, black = (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)
    light, dark = _rgb(LIGHT_BACKGROUND), _rgb(DARK_BACKGROUND)
    assert _contrast(white, colour) >= 4.5  # the verdict word on its label (WCAG AA text)
    assert _contrast(colour, light) >= 3 and _contrast(colour, dark) >= 3  # the box's edge
    # the message in the theme's own text colour over the tinted box (WCAG AAA text)
    light_box, dark_box = _over(colour, core.TINT, light), _over(colour, core.TINT, dark)
    assert _contrast(_over(black, 0.87, light_box), light_box) >= 7  # Light: rgba(0,0,0,.87)
    assert _contrast(white, dark_box) >= 7  # Dark: #fff


# --- what is displayed -------------------------------------------------------------------------


def test_show_displays_html_plain_text_and_the_json_the_command_line_reads(monkeypatch):
    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(
        IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw))
    )
    verdict = result("failed", "wrong sign <here>", "flip it")
    core.show(verdict)
    [(bundle, raw)] = shown
    assert raw
    assert set(bundle) == {"text/plain", "text/html", MIME}
    assert bundle["text/plain"] == "❌ Exercise 1.1 failed: wrong sign <here> Hint: flip it"
    assert bundle["text/html"] == verdict.html
    assert bundle[MIME] == {
        "exercise": "Exercise 1.1", "status": "failed", "message": "wrong sign <here>",
        "hint": "flip it",
    }
    assert Result(**json.loads(json.dumps(bundle[MIME]))) == verdict
    # the check's return value, shown again as the cell's value, is not displayed twice
    verdict._ipython_display_()
    assert len(shown) == 1


def test_outside_ipython_the_verdict_is_one_line(capsys):
    core.show(result("not done", "replace it", ""))
    assert capsys.readouterr().out == "⏳ Exercise 1.1 not done yet: replace it\n"


def test_a_kernel_saves_all_three_representations(tmp_path):
    """In a real kernel, the notebook keeps the HTML, the plain line and the JSON."""
    from nbclient import NotebookClient

    code = (
        "from nfcourse.course.check import Mistake, exercise\n"
        "@exercise('Exercise 9.1')\n"
        "def check(fn):\n"
        "    raise Mistake('got <b>3</b>', 'see `fn`')\n"
        "check(None)"
    )
    nb = new_notebook(
        cells=[new_code_cell(code)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}},
    )
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["display_data"]  # shown once, not twice
    data = outputs[0].data
    expected = Result("Exercise 9.1", "failed", "got <b>3</b>", "see `fn`")
    assert data["text/plain"] == expected.line
    assert data["text/html"] == expected.html
    assert data[MIME] == asdict(expected)
    nbformat.validate(nb)
