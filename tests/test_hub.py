"""The class recipe of docs/hub.md, end to end: hub/jupyterhub_config.py on this machine.

A JupyterHub (its pure-Python proxy, the shared-password authenticator, the
simple local spawner) is started from a temporary folder: its own database,
cookie secret and learners' homes. Two learners log in from headless Chromium,
follow the nbgitpuller link to their own copy of the course (pulled from a local
clone of this repository), run lesson 01 with Run All, and save; one of them
also edits a cell. Then: each copy lies in its learner's home, each differs from
the course only by that learner's own run and edit, and the instructor's
`python -m nfcourse check` over both homes reports every exercise as not done.

That test is slow (two JupyterLabs and three runs of lesson 01): marked ``hub``,
run it with ``pytest -m hub tests/test_hub.py``; it needs Chromium. The other two
read the recipe only (a second). All need the ``hub`` extra.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LAB_SETTINGS,
    _free_port,
    chromium_missing,
    run_all,
    save_notebook,
    wait_until,
)

REPO = Path(__file__).resolve().parent.parent
HUB_CONFIG = REPO / "hub" / "jupyterhub_config.py"
LESSON = "01_change_of_variables.ipynb"
FOLDER = "nfcourse"  # the folder nbgitpuller makes in each learner's home
LEARNERS = ("ada", "grace")
PASSWORD = "workshop-password"  # at least 8 characters (the authenticator's rule)
EDIT = "# ada's own note"
ACTION_TIMEOUT_MS = 60_000

needs_chromium = pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing()))
jupyterhub = pytest.importorskip(
    "jupyterhub", reason="the hub extra is not installed: pip install -e '.[hub]'"
)
pytest.importorskip("nbgitpuller", reason="the hub extra is not installed: pip install -e '.[hub]'")
sync_api = pytest.importorskip("playwright.sync_api")


def git_pull_link(base: str, repo: Path, branch: str, lesson: str) -> str:
    """The link of docs/hub.md: log in, pull (or update) the course, open ``lesson``."""
    query = urllib.parse.urlencode(
        {
            "repo": str(repo),
            "branch": branch,
            "targetpath": FOLDER,
            "urlpath": f"lab/tree/{FOLDER}/notebooks/{lesson}",
        }
    )
    return f"{base}/hub/user-redirect/git-pull?{query}"


class Hub:
    """``jupyterhub -f hub/jupyterhub_config.py`` with its state and homes under ``tmp``."""

    def __init__(self, tmp: Path):
        self.state, self.homes = tmp / "state", tmp / "homes"
        self.state.mkdir()
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = dict(os.environ)
        for var in ("MPLBACKEND", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "JUPYTER_CONFIG_DIR"):
            env.pop(var, None)
        env.update(
            NFCOURSE_HUB_PASSWORD=PASSWORD,
            NFCOURSE_HUB_USERS=",".join(LEARNERS),
            NFCOURSE_HUB_STATE=str(self.state),
            NFCOURSE_HUB_HOMES=str(self.homes / "{username}"),
            NFCOURSE_HUB_PORT=str(port),
            NFCOURSE_HUB_API_PORT=str(_free_port()),
            NFCOURSE_HUB_PROXY_API_PORT=str(_free_port()),
        )
        self.log_path = self.state / "jupyterhub.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(HUB_CONFIG)],
            cwd=self.state,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(
                f"JupyterHub to answer on {self.base}/hub/api (log: {self.log_path})",
                self._ready,
                120,
            )
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"JupyterHub exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(self.base + "/hub/api", timeout=5) as resp:
                return "version" in json.loads(resp.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        """SIGTERM: the hub stops the learners' servers (cleanup_servers) and its proxy."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)
        self._log.close()


@pytest.fixture
def source(tmp_path) -> tuple[Path, str]:
    """The course as nbgitpuller pulls it: a local clone of this repository, and its branch."""
    dest = tmp_path / "source" / "nfcourse.git"
    subprocess.run(
        ["git", "clone", "--quiet", "--local", "--bare", str(REPO), str(dest)],
        check=True,
        timeout=120,
    )
    branch = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--abbrev-ref", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return dest, branch


@pytest.fixture
def hub(tmp_path):
    for name in LEARNERS:  # every cell in the page's DOM, so Run All's prompts can be read
        for key, values in LAB_SETTINGS.items():
            path = (
                tmp_path
                / "homes"
                / name
                / ".jupyter/lab/user-settings"
                / (f"{key}.jupyterlab-settings")
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
    server = Hub(tmp_path)
    yield server
    server.stop()


def learner_session(browser, hub: Hub, name: str, link: str):
    """Log ``name`` in, follow the course link; return the page showing lesson 01, pulled."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(ACTION_TIMEOUT_MS)
    page.goto(f"{hub.base}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(re.compile(rf"/user/{name}/lab"), timeout=180_000)  # spawned
    page.goto(link)  # nbgitpuller clones, then sends the learner to the lesson
    page.wait_for_url(
        re.compile(rf"/user/{name}/lab/tree/{FOLDER}/notebooks/{LESSON}"), timeout=180_000
    )
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=120_000)
    return page


def sources(path: Path) -> list[tuple[str, str]]:
    nb = json.loads(path.read_text())
    return [(cell["cell_type"], "".join(cell["source"])) for cell in nb["cells"]]


def ran(path: Path) -> int:
    """How many code cells of the saved notebook carry an execution count."""
    nb = json.loads(path.read_text())
    return sum(1 for c in nb["cells"] if c["cell_type"] == "code" and c["execution_count"])


def load_recipe(tmp_path, monkeypatch, **settings):
    from traitlets.config.loader import PyFileConfigLoader

    for var in [v for v in os.environ if v.startswith("NFCOURSE_HUB_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("NFCOURSE_HUB_STATE", str(tmp_path))
    for var, value in settings.items():
        monkeypatch.setenv(var, value)
    return PyFileConfigLoader(HUB_CONFIG.name, path=str(HUB_CONFIG.parent)).load_config()


def test_the_recipe_says_which_setting_is_missing_or_wrong(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="NFCOURSE_HUB_PASSWORD is not set"):
        load_recipe(tmp_path, monkeypatch)
    with pytest.raises(SystemExit, match="NFCOURSE_HUB_PORT must be a whole number, got 'eighty'"):
        load_recipe(
            tmp_path, monkeypatch, NFCOURSE_HUB_PASSWORD=PASSWORD, NFCOURSE_HUB_PORT="eighty"
        )


def test_the_recipe_needs_no_node_and_gives_each_learner_a_home(tmp_path, monkeypatch):
    c = load_recipe(tmp_path, monkeypatch, NFCOURSE_HUB_PASSWORD=PASSWORD)
    proxy = c.ConfigurableHTTPProxy.command
    version = subprocess.run([*proxy[:1], "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and "version" in version.stdout.lower(), version
    assert c.JupyterHub.spawner_class == "simple" and c.Spawner.default_url == "/lab"
    assert c.SimpleLocalProcessSpawner.home_dir_template == str(tmp_path / "homes/{username}")
    assert c.Spawner.environment["OMP_NUM_THREADS"] == "1"
    assert c.Authenticator.allow_all is True  # any name, one password (no NFCOURSE_HUB_USERS)


@pytest.mark.hub
@needs_chromium
def test_two_learners_each_get_their_own_copy_and_the_instructor_checks_both(hub, source, tmp_path):
    repo, branch = source
    link = git_pull_link(hub.base, repo, branch, LESSON)
    course = sources(REPO / "notebooks" / LESSON)
    copies = {name: tmp_path / "homes" / name / FOLDER / "notebooks" / LESSON for name in LEARNERS}

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            pages = {name: learner_session(browser, hub, name, link) for name in LEARNERS}
            for name, page in pages.items():
                assert copies[name].is_file(), f"{name}'s copy is not in their home"
                final = run_all(page, idle_timeout=120, run_timeout=300)
                assert all(re.fullmatch(r"\[\d+\]:", p) for p in final), (
                    f"{name}: Run All left cells that did not run: {final}\n{hub.log_tail()}"
                )
                save_notebook(page)
            # Ada edits the first code cell (and saves); Grace's copy must not change.
            before = copies["grace"].read_bytes()
            editor = pages["ada"].locator(".jp-CodeCell .jp-InputArea-editor .cm-content").first
            editor.click()
            pages["ada"].keyboard.press("Control+End")
            pages["ada"].keyboard.type("\n" + EDIT)
            save_notebook(pages["ada"])
        finally:
            browser.close()

    # Each copy is a clone of the course in its learner's home, and each ran.
    for name, copy in copies.items():
        assert (copy.parents[1] / ".git").is_dir(), f"{name}'s copy is not a git clone"
        assert ran(copy) == sum(1 for kind, _ in course if kind == "code"), (
            f"{name}'s saved lesson does not show every code cell run"
        )
    assert copies["grace"].read_bytes() == before, "Ada's edit changed Grace's copy"
    # Their notebooks differ from the course only by their own runs (and Ada's edit).
    assert sources(copies["grace"]) == course
    ada = sources(copies["ada"])
    changed = [i for i, (a, c) in enumerate(zip(ada, course, strict=True)) if a != c]
    assert len(changed) == 1 and ada[changed[0]][1] == course[changed[0]][1] + "\n" + EDIT, (
        f"Ada's copy differs from the course in cells {changed}, expected only her edit"
    )

    # The instructor checks everyone's lesson 01 at once.
    homes = sorted(str(p) for p in (tmp_path / "homes").glob(f"*/{FOLDER}/notebooks/{LESSON}"))
    assert len(homes) == len(LEARNERS)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("NFCOURSE_STRICT", None)
    report = subprocess.run(
        [sys.executable, "-m", "nfcourse", "check", *homes],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    out = report.stdout + report.stderr
    for name in LEARNERS:
        part = out.split(f"homes/{name}/")[1].split("homes/")[0]
        not_done = re.findall(r"Exercise (1\.\d) not done yet", part)
        assert not_done == ["1.1", "1.2", "1.3"], f"the check of {name}'s lesson said:\n{out}"
