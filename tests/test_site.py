"""The course's static site, read in headless Chromium (``make site-test``, run by CI).

``make site`` builds it into ``build/site/html`` (every lesson executed, several minutes),
which is too slow for ``make test``; these tests are marked ``site`` and left out of
``make test``, and ``make site-test`` builds the site and runs them. Without a built site
they fail and say how to build it.

Every lesson page loads, shows its figures (each image decoded), its math typeset by the
site's own MathJax (no internet), and links its exercise notebook; no internal link of any
page is broken.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, chromium_missing

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("NFCOURSE_SITE", ROOT / "build" / "site")) / "html"
LESSONS = sorted(p.stem for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
PAGES = ["index", *(f"lessons/{name}" for name in LESSONS), "instructors", "benchmarks"]

pytestmark = pytest.mark.site


@pytest.fixture(scope="module")
def site():
    if not (SITE / "index.html").exists():
        pytest.fail(f"no site in {SITE}: build it with `make site` (or run `make site-test`)")
    if chromium_missing():
        pytest.fail(chromium_missing())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser, f"http://127.0.0.1:{server.server_address[1]}/"
        browser.close()
    server.shutdown()


def open_page(site, name: str):
    browser, base = site
    page = browser.new_page()
    failed = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on(
        "response", lambda response: failed.append(response.url) if response.status >= 400 else 0
    )
    page.goto(base + name + ".html", wait_until="load")
    return page, failed


@pytest.mark.parametrize("lesson", LESSONS)
def test_a_lesson_page_has_its_figures_math_and_exercise_link(site, lesson):
    page, failed = open_page(site, f"lessons/{lesson}")
    try:
        assert page.title().strip(), "the page has no title"
        assert not failed, f"resources that did not load: {failed}"
        images = page.eval_on_selector_all(
            "main img", "els => els.map(e => [e.src, e.complete && e.naturalWidth > 0])"
        )
        if lesson != "00_welcome" or images:
            assert images, "no figure on the page"
        assert all(ok for _, ok in images), [src for src, ok in images if not ok]
        # MathJax (served by the site) replaces every \( ... \) with its typeset version
        page.wait_for_function("() => window.MathJax && MathJax.isReady", timeout=30_000)
        page.wait_for_function(
            "() => MathJax.Hub.queue.pending === 0 && MathJax.Hub.queue.running === 0",
            timeout=60_000,
        )
        formulas = page.eval_on_selector_all(
            "main span.math.notranslate, main div.math.notranslate",
            "els => els.map(e => !!e.querySelector('.MathJax, .MathJax_Display'))",
        )
        assert formulas, "no math on the page"
        assert all(formulas), f"{formulas.count(False)} of {len(formulas)} formulas left raw"
        # MathJax's own parts; the MathJax copy has STIX fonts only, and MathJax probes for
        # TeX fonts (and about:blank) before it falls back to them
        missing = [u for u in failed if "/fonts/HTML-CSS/TeX/" not in u and u != "about:blank"]
        assert not missing, f"resources that did not load: {missing}"
        link = page.locator(f"main a.reference.download[href$='{lesson}.ipynb']").first
        assert "exercise" in page.locator("main").inner_text()[:4000].lower()
        href = link.get_attribute("href")
        assert href and "_downloads" in href, f"no download link to the exercise notebook: {href}"
        exercise = (SITE / "lessons" / unquote(href)).resolve()
        assert exercise.read_bytes() == (ROOT / "notebooks" / f"{lesson}.ipynb").read_bytes()
    finally:
        page.close()


@pytest.mark.parametrize("name", PAGES)
def test_no_internal_link_is_broken(site, name):
    page, failed = open_page(site, name)
    try:
        assert not failed, f"resources that did not load: {failed}"
        base = page.url
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
        broken = []
        for href in hrefs:
            url = urlparse(urljoin(base, href))
            if url.scheme not in ("http", "https") or url.netloc != urlparse(base).netloc:
                continue
            target = SITE / unquote(url.path).lstrip("/")
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(href)
            elif url.fragment and target.suffix == ".html":
                text = target.read_text(errors="replace")
                if f'id="{url.fragment}"' not in text:
                    broken.append(href)
        assert not broken, f"broken links on {name}: {broken}"
    finally:
        page.close()
