"""The course end to end, as a learner sees it: a real JupyterLab in headless Chromium.

A private JupyterLab server (token auth on, fresh settings and workspaces,
127.0.0.1, a free port) serves a temporary copy of the exercise notebooks.
For lessons 03 and 04, Chromium opens the notebook, waits for the kernel to
read Idle, runs Run > Run All Cells and waits until every cell ran. Then:

- no cell shows an error (in the page, and in the notebook saved by JupyterLab);
- the slider explorers render (sliders and picture visible);
- moving a slider, by keyboard and by mouse, changes the picture (the PNG bytes);
- the training progress bars (tqdm widgets) reach 100%.

And lesson 01 as a new learner meets it: exercise 1.1's check shows its
verdict box "Not done yet"; a wrong answer typed into the cell gets a "Failed"
box with the check's hint; the right one gets "Passed" (the boxes are looked
at in the light and the dark theme).

And what `make lab` gives: the URL the server prints opens lesson 00 (not the
Launcher), and the course's setting keeps JupyterLab's news pop-up away.

Screenshots go to test-artifacts/browser/. Needs Chromium (/usr/bin/chromium,
or NFCOURSE_CHROMIUM) and the `playwright` package (dev extra); it never
downloads a browser. Without Chromium the test skips and says how to get it.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ERROR_TEXT,
    LESSON_00_URL,
    NEWS_QUESTION,
    STDERR_JS,
    LabServer,
    chromium_missing,
    code_cell,
    copy_course,
    image_digest,
    kernel_is_idle,
    menu_item,
    run_all,
    save_notebook,
    wait_until,
)

from nfcourse.course.check._core import COLOURS

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # part of the dev extra: the `browser` fixture fails and says so
    expect = sync_playwright = None

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"

# A lesson runs in 30-40 s on an idle 2-core machine, twice that while the other
# pytest worker runs notebooks too: the deadlines are generous ceilings, not estimates.
IDLE_TIMEOUT = 120  # kernel start, until the status bar reads Idle
RUN_TIMEOUT = 360  # Run All, until every cell has run
REDRAW_TIMEOUT = 60  # a slider moved, until the new picture is in the page
ACTION_TIMEOUT_MS = 60_000  # Playwright's default for clicks, visibility, ...

pytestmark = pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing()))


# --- fixtures: server, browser, one notebook page per lesson -------------------------------------


def _report(config, line: str) -> None:
    """Print to the terminal, past pytest's capture (xdist workers have no terminal: captured)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.fixture(scope="module")
def artifacts(request):
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    shots: list[str] = []
    yield shots
    (ARTIFACTS / "index.txt").write_text("".join(f"{s}\n" for s in shots))
    _report(request.config, f"\nbrowser test screenshots ({len(shots)}) in {ARTIFACTS}:")
    for s in shots:
        _report(request.config, f"  {s}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab")
    server = LabServer(
        copy_course(ROOT, tmp / "course"), tmp / "state", app_settings=ROOT / "lab" / "settings"
    )
    yield server
    killed = server.stop()
    assert not killed, f"kernels were still running after the server stopped: killed {killed}"


@pytest.fixture(scope="module")
def browser():
    if sync_playwright is None:
        pytest.fail(
            "the Python package `playwright` is missing; it is in the dev extra: "
            "`.venv/bin/pip install -e '.[dev]'` (the test uses the system's Chromium: "
            "never run `playwright install`)"
        )
    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    except BaseException:
        pw.stop()
        raise
    yield chromium
    try:
        chromium.close()
    finally:
        pw.stop()


@dataclass
class Lesson:
    name: str
    path: str  # relative to the server's root
    page: object
    prompts: list[str]
    seconds: float
    shots: list[str]

    def shot(self, target, label: str) -> Path:
        """Screenshot ``target`` (a cell, or the page) to test-artifacts/browser/."""
        path = ARTIFACTS / f"{self.name[:2]}_{label}.png"
        if target is not self.page:  # the cell at the top of the notebook: nothing covers it
            target.evaluate("e => e.scrollIntoView({block: 'start'})")
        target.screenshot(path=str(path), animations="disabled")
        self.shots.append(str(path.relative_to(ROOT)))
        print(f"screenshot: {path}")
        return path


def open_and_run(request, lab: LabServer, browser, shots: list[str], name: str) -> Lesson:
    """Open notebooks/<name>.ipynb in a fresh browser context and Run All; closed at teardown."""
    path = f"notebooks/{name}.ipynb"
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    page.set_default_timeout(ACTION_TIMEOUT_MS)
    lesson = Lesson(name, path, page, [], 0.0, shots)

    def close():
        try:
            lesson.shot(page, "page_at_the_end")
        finally:
            context.close()
            n = lab.shutdown_session(path)
            _report(request.config, f"{path}: page closed, {n} kernel shut down (REST)")

    request.addfinalizer(close)
    start = time.monotonic()
    # its own workspace, reset: nothing restored from another lesson's page
    page.goto(lab.url(f"/lab/workspaces/{name}/tree/{path}?reset"))
    page.locator(".jp-NotebookPanel .jp-CodeCell").first.wait_for()
    lesson.prompts = run_all(page, IDLE_TIMEOUT, RUN_TIMEOUT)
    lesson.seconds = time.monotonic() - start
    _report(request.config, f"\n{path}: opened and ran in {lesson.seconds:.1f} s")
    return lesson


# --- checks shared by the lessons ----------------------------------------------------------------


def check_every_cell_ran_without_error(lesson: Lesson, lab: LabServer) -> None:
    page = lesson.page
    stderr = page.evaluate(STDERR_JS)
    errors = [text for text in stderr if ERROR_TEXT.search(text)]
    assert not errors, "error output in the page:\n" + "\n---\n".join(errors)
    assert page.get_by_text("Error displaying widget").count() == 0
    counts = [re.fullmatch(r"\[(\d+)\]:", p) for p in lesson.prompts]
    assert all(counts), f"cells that did not run (prompt [ ] instead of [n]): {lesson.prompts}"
    numbers = [int(m.group(1)) for m in counts]
    assert numbers == list(range(1, len(numbers) + 1)), f"not one run, top to bottom: {numbers}"
    # what JupyterLab saves: no error output hidden anywhere (e.g. a collapsed output)
    save_notebook(page)
    nb = json.loads((lab.root / lesson.path).read_text())
    saved_errors = [
        f"{out.get('ename')}: {out.get('evalue')}"
        for cell in nb["cells"] if cell["cell_type"] == "code"
        for out in cell["outputs"] if out["output_type"] == "error"
    ]
    assert not saved_errors, f"error outputs in the saved notebook: {saved_errors}"
    lesson.shot(page, "page_after_run_all")


PROGRESS_JS = """() => [...document.querySelectorAll('.widget-hprogress')].map(p => ({
    width: p.querySelector('.progress-bar').style.width,
    text: p.parentElement.innerText.replace(/\\s+/g, ' '),
}))"""


def check_progress_bars(lesson: Lesson, source: str) -> None:
    bars = lesson.page.evaluate(PROGRESS_JS)
    assert bars, "no tqdm progress bar widget in the page"
    for bar in bars:
        steps = re.search(r"(\d+)/(\d+)", bar["text"])
        assert bar["width"] == "100%" and "100%" in bar["text"], f"bar not at 100%: {bar}"
        assert steps and steps.group(1) == steps.group(2), f"bar not at its last step: {bar}"
    cell = code_cell(lesson.page, source)
    expect(cell.locator(".widget-hprogress").first).to_be_visible()
    lesson.shot(cell, "progress_bar")


def slider(cell, label: str):
    """The ipywidgets slider labelled ``label`` in ``cell``."""
    return cell.locator(".widget-slider").filter(
        has=cell.page.locator("label.widget-label", has_text=re.compile(rf"^{label}$"))
    )


def picture(cell):
    img = cell.locator("img.widget-image")
    expect(img).to_be_visible()
    return wait_until("the widget's picture to load", lambda: image_digest(img), REDRAW_TIMEOUT)


def widget_message(cell) -> str:
    """The explorer's message line (the last HTML widget): a redraw error shows there."""
    return cell.locator(".widget-html-content").last.inner_text()


def wait_for_new_picture(cell, old: str, what: str) -> str:
    img = cell.locator("img.widget-image")
    try:
        return wait_until(
            f"the picture to change after {what}",
            lambda: (d := image_digest(img)) and d != old and d,
            REDRAW_TIMEOUT,
        )
    except TimeoutError as err:
        raise AssertionError(f"{err}; widget message: {widget_message(cell)!r}") from None


def press(handle, key: str, times: int = 1) -> None:
    handle.focus()
    for _ in range(times):
        handle.press(key)


def drag(page, handle, dx: float) -> None:
    """Drag a slider handle by ``dx`` pixels with the mouse."""
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=10)
    page.mouse.up()


def value_of(handle) -> float:
    return float(handle.get_attribute("aria-valuenow"))


# --- the lessons ---------------------------------------------------------------------------------


def test_server_keeps_token_auth_on(lab):
    assert lab.status_without_token("/api/kernels") == 403
    assert lab.api("GET", "/api/kernels") == []


def test_make_lab_opens_lesson_00_without_the_news_pop_up(request, lab, browser, artifacts):
    """The URL `make lab` prints opens lesson 00; the course's setting turns the news off."""
    makefile = (ROOT / "Makefile").read_text()
    assert f"--LabApp.default_url={LESSON_00_URL}" in makefile  # as the test's server is started
    printed = lab.printed_urls()
    assert printed, f"no URL in the server's output:\n{lab.log_tail()}"
    assert {urlparse(u).path for u in printed} == {LESSON_00_URL}, printed
    # the course's lab/settings/ reached JupyterLab: "Never" is the default of fetchNews
    schema = lab.api("GET", "/lab/api/settings/@jupyterlab/apputils-extension:notification")
    assert schema["schema"]["properties"]["fetchNews"]["default"] == "false"

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(ACTION_TIMEOUT_MS)
    path = LESSON_00_URL.removeprefix("/lab/tree/")
    try:
        page.goto(lab.url(urlparse(printed[0]).path))  # with the test's token
        current = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
        expect(current).to_contain_text("00_welcome.ipynb")
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
        wait_until("the kernel status bar to read Idle", lambda: kernel_is_idle(page), IDLE_TIMEOUT)
        assert page.locator(".jp-Launcher").count() == 0, "the Launcher opened too"
        # JupyterLab asks about the news once the page is restored, well before the kernel
        # is idle: by now the question would be on screen
        expect(page.get_by_text(NEWS_QUESTION)).to_have_count(0)
        shot = ARTIFACTS / "00_make_lab_url.png"
        page.screenshot(path=str(shot), animations="disabled")
        artifacts.append(str(shot.relative_to(ROOT)))
    finally:
        context.close()
        n = lab.shutdown_session(path)
        _report(request.config, f"{path}: page closed, {n} kernel shut down (REST)")


@pytest.fixture(scope="class")
def lesson03(request, lab, browser, artifacts):
    return open_and_run(request, lab, browser, artifacts, "03_planar_and_radial")


@pytest.fixture(scope="class")
def lesson04(request, lab, browser, artifacts):
    return open_and_run(request, lab, browser, artifacts, "04_coupling_flows")


class TestLesson03PlanarAndRadial:
    @pytest.fixture
    def lesson(self, lesson03):
        return lesson03

    def test_every_cell_runs_without_an_error(self, lesson, lab):
        check_every_cell_ran_without_error(lesson, lab)

    @pytest.mark.parametrize(
        ("source", "labels"),
        [
            ("widgets.planar_explorer()", ["u1", "u2", "w1", "w2", "b"]),
            ("widgets.radial_explorer()", ["z0_1", "z0_2", "alpha", "beta"]),
            ("widgets.layer_stepper(planar_u1", ["layer k"]),
        ],
        ids=["planar_explorer", "radial_explorer", "layer_stepper"],
    )
    def test_explorer_renders(self, lesson, source, labels):
        cell = code_cell(lesson.page, source)
        sliders = cell.locator(".widget-slider")
        expect(sliders).to_have_count(len(labels))
        for label in labels:
            expect(slider(cell, label).locator(".noUi-handle")).to_be_visible()
        assert picture(cell).split(":")[2] != "0x0"
        assert widget_message(cell) == ""
        lesson.shot(cell, source.split(".")[-1].split("(")[0])

    def test_keyboard_on_a_planar_slider_changes_the_picture(self, lesson):
        cell = code_cell(lesson.page, "widgets.planar_explorer()")
        handle = slider(cell, "w1").locator(".noUi-handle")
        before, info = picture(cell), cell.locator(".widget-html-content").first.inner_text()
        start = value_of(handle)
        press(handle, "ArrowRight", 4)
        wait_until("the w1 slider to move", lambda: value_of(handle) != start, 10)
        wait_for_new_picture(cell, before, "ArrowRight x4 on the w1 slider")
        assert value_of(handle) == pytest.approx(start + 0.2)
        # the text under the picture follows too: the kernel redrew with the new value
        expect(cell.locator(".widget-html-content").first).not_to_have_text(info)
        assert widget_message(cell) == ""
        lesson.shot(cell, "planar_explorer_after_keyboard")

    def test_mouse_on_a_radial_slider_changes_the_picture(self, lesson):
        cell = code_cell(lesson.page, "widgets.radial_explorer()")
        handle = slider(cell, "beta").locator(".noUi-handle")
        before, start = picture(cell), value_of(handle)
        drag(lesson.page, handle, -50)
        wait_until("the beta slider to move", lambda: value_of(handle) < start - 0.5, 10)
        wait_for_new_picture(cell, before, "dragging the beta slider")
        assert widget_message(cell) == ""
        lesson.shot(cell, "radial_explorer_after_mouse")

    def test_layer_stepper_shows_the_last_layer(self, lesson):
        cell = code_cell(lesson.page, "widgets.layer_stepper(planar_u1")
        handle = slider(cell, "layer k").locator(".noUi-handle")
        before = picture(cell)
        press(handle, "End")
        wait_until("the layer slider to reach k = 16", lambda: value_of(handle) == 16, 10)
        wait_for_new_picture(cell, before, "End on the layer slider")
        lesson.shot(cell, "layer_stepper_after_keyboard")

    def test_training_progress_bar_reaches_100_percent(self, lesson):
        check_progress_bars(lesson, "hist_greedy = nf.fit_reverse_kl(")


class TestLesson04Coupling:
    @pytest.fixture
    def lesson(self, lesson04):
        return lesson04

    def test_every_cell_runs_without_an_error(self, lesson, lab):
        check_every_cell_ran_without_error(lesson, lab)

    def test_layer_stepper_follows_its_slider(self, lesson):
        cell = code_cell(lesson.page, "layer_stepper(flow, n=2000")
        handle = slider(cell, "layer k").locator(".noUi-handle")
        expect(handle).to_be_visible()
        assert widget_message(cell) == ""
        first = picture(cell)
        assert value_of(handle) == 0
        lesson.shot(cell, "layer_stepper_k0")
        drag(lesson.page, handle, 400)  # past the end of the track: the last layer
        wait_until("the layer slider to move", lambda: value_of(handle) > 0, 10)
        wait_for_new_picture(cell, first, "dragging the layer slider")
        lesson.shot(cell, f"layer_stepper_k{value_of(handle):.0f}_after_mouse")
        press(handle, "Home")  # back to k = 0: the very same picture as at first
        wait_until("the layer slider to reach k = 0", lambda: value_of(handle) == 0, 10)
        wait_until("the k = 0 picture to come back",
                   lambda: image_digest(cell.locator("img.widget-image")) == first, REDRAW_TIMEOUT)

    def test_training_progress_bars_reach_100_percent(self, lesson):
        check_progress_bars(lesson, "histories[name, kind] = nf.fit(")


# --- a learner's first exercise: a wrong answer, its hint, then the right one ---------------

WRONG_1_1 = """import math


def log_density_exp(x):
    z = torch.log(x)
    return -0.5 * z**2 - 0.5 * math.log(2 * math.pi)  # the Jacobian term forgotten
"""
RIGHT_1_1 = """import math


def log_density_exp(x):
    z = torch.log(x)
    value = -0.5 * z**2 - 0.5 * math.log(2 * math.pi) - z
    return torch.where(x > 0, value, torch.full_like(x, -torch.inf))
"""


def type_into(page, cell, source: str) -> None:
    """Replace a cell's text as a learner would: click in it, select all, type."""
    cell.locator(".jp-InputArea-editor .cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(source)  # one input event: no auto-indent on top of ours


def verdict_box(check, status: str, word: str):
    """The check cell's verdict box (HTML): one, visible, the verdict in words, the exercise.

    Only the HTML is shown (not the plain-text line with its emoji); the verdict
    word sits on a label of the verdict's colour (the inline style was applied).
    """
    box = check.locator(".jp-OutputArea-output .nfcourse-verdict")
    expect(box).to_have_count(1)
    expect(box).to_be_visible()
    expect(box).to_have_class(re.compile(rf"\bnfcourse-verdict-{status}\b"))
    expect(box).to_have_attribute("role", "status")
    expect(box.locator(".nfcourse-verdict-word")).to_have_text(word)
    expect(box.locator(".nfcourse-verdict-exercise")).to_have_text("Exercise 1.1")
    expect(box.locator(".nfcourse-verdict-message")).to_be_visible()
    assert check.locator('.jp-OutputArea-output[data-mime-type="text/plain"]').count() == 0
    colour = COLOURS[status.replace("-", " ")]
    rgb = "rgb({}, {}, {})".format(*(int(colour[i : i + 2], 16) for i in (1, 3, 5)))
    label = box.locator(".nfcourse-verdict-word").evaluate(
        "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]"
    )
    assert label == [rgb, "rgb(255, 255, 255)"], label
    font = box.locator(".nfcourse-verdict-message").evaluate("e => getComputedStyle(e).fontFamily")
    assert "monospace" not in font, font  # prose, not a line of code
    return box


def run_cell_and_check(page, cell, check) -> str:
    """Shift+Enter on the exercise cell, then on its check cell; the check's new verdict."""
    before = check.locator(".jp-OutputArea-output").inner_text()
    cell.locator(".jp-InputArea-editor .cm-content").click()
    page.keyboard.press("Shift+Enter")
    check.locator(".jp-InputArea-editor .cm-content").click()
    page.keyboard.press("Shift+Enter")
    wait_until(
        "the check's verdict to change",
        lambda: check.locator(".jp-OutputArea-output").inner_text() not in ("", before),
        IDLE_TIMEOUT,
    )
    wait_until("the kernel to be Idle", lambda: kernel_is_idle(page), IDLE_TIMEOUT)
    return check.locator(".jp-OutputArea-output").inner_text()


class TestLearnerFirstExercise:
    """Exercise 1.1 as a new learner meets it: not done, then a wrong answer, then right."""

    @pytest.fixture(scope="class")
    @classmethod
    def lesson(cls, request, lab, browser, artifacts):
        return open_and_run(request, lab, browser, artifacts, "01_change_of_variables")

    def test_fresh_notebook_says_not_done_yet(self, lesson, lab):
        check = code_cell(lesson.page, "check.log_density_exp(log_density_exp)")
        box = verdict_box(check, "not-done", "Not done yet")
        expect(box.locator(".nfcourse-verdict-message")).to_contain_text(
            "replace the raise NotImplementedError with your code"
        )
        expect(box.locator(".nfcourse-verdict-hint")).to_have_count(0)
        lesson.shot(check, "exercise_1_1_not_done_yet")
        check_every_cell_ran_without_error(lesson, lab)

    def test_wrong_answer_gets_its_hint_then_the_right_one_passes(self, lesson):
        page = lesson.page
        cell = code_cell(page, "def log_density_exp(x):")
        check = code_cell(page, "check.log_density_exp(log_density_exp)")
        type_into(page, cell, WRONG_1_1)
        verdict = run_cell_and_check(page, cell, check)
        assert "Failed" in verdict, verdict
        box = verdict_box(check, "failed", "Failed")
        hint = box.locator(".nfcourse-verdict-hint")
        expect(hint).to_be_visible()
        expect(hint).to_contain_text(re.compile(r"^Hint: .*the Jacobian term is missing"))
        lesson.shot(check, "exercise_1_1_wrong_answer_hint")
        type_into(page, cell, RIGHT_1_1)
        verdict = run_cell_and_check(page, cell, check)
        assert "Passed" in verdict, verdict
        verdict_box(check, "passed", "Passed")
        lesson.shot(check, "exercise_1_1_passed")
        expect(page.get_by_text(NEWS_QUESTION)).to_have_count(0)

    def test_verdicts_read_in_the_dark_theme(self, lesson):
        """The boxes in JupyterLab Dark: the labels keep their colours; a screenshot to look at."""
        page = lesson.page
        check = code_cell(page, "check.log_density_exp(log_density_exp)")
        light = check.locator(".nfcourse-verdict-word").evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        try:
            use_theme(page, "JupyterLab Dark")
            box = check.locator(".nfcourse-verdict")
            expect(box).to_be_visible()
            word = box.locator(".nfcourse-verdict-word")
            assert word.evaluate("e => getComputedStyle(e).backgroundColor") == light
            text = box.locator(".nfcourse-verdict-exercise").evaluate(
                "e => getComputedStyle(e).color"
            )  # the theme's own text colour: light on the dark page
            assert min(int(c) for c in re.findall(r"\d+", text)[:3]) > 200, text
            lesson.shot(check, "exercise_1_1_verdict_dark_theme")
        finally:
            use_theme(page, "JupyterLab Light")


def use_theme(page, name: str) -> None:
    """Settings > Theme > ``name``; wait until the page has switched."""
    menu_item(page, "Settings", "Theme", name)
    wait_until(
        f"the theme {name!r}",
        lambda: page.evaluate("document.body.dataset.jpThemeName") == name,
        30,
    )
