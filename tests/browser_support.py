"""Helpers of tests/test_browser.py: a private JupyterLab server and a JupyterLab page driver.

The server serves a temporary copy of the course with token auth on, fresh
settings, workspaces, config, data, runtime and IPython directories (nothing
from the user's own Jupyter setup leaks in), on a free 127.0.0.1 port. It is
started as `make lab` starts it: the same default URL (lesson 00) and the
course's own JupyterLab settings (``lab/settings/``: no news pop-up). The page
helpers drive JupyterLab as a learner does: open a notebook, wait for the
kernel to read Idle, Run menu > Run All Cells, move sliders by keyboard and
mouse. Every wait has a deadline and says what it waited for when it expires.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("NFCOURSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # needed as root (containers, CI)
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# JupyterLab settings the test adds, written into the fresh user settings dir:
# every cell attached to the DOM (the default windowing leaves cells out of view
# unrendered, so their outputs could not be read). The news pop-up is turned off
# by the course's own setting (lab/settings/), which the test checks.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}

# What `make lab` passes to JupyterLab as --LabApp.default_url: the URL it prints
# and opens is lesson 00, not the Launcher.
LESSON_00_URL = "/lab/tree/notebooks/00_welcome.ipynb"
NEWS_QUESTION = "Would you like to get notified about official Jupyter news?"


def chromium_missing() -> str | None:
    """Why the browser test cannot run here (``None`` if Chromium is there)."""
    if os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK):
        return None
    return (
        f"Chromium is missing ({CHROMIUM} not found), so the browser test is skipped. "
        "Install it with `sudo apt-get install -y chromium` (Debian/Ubuntu; .ci/run does "
        "this), or point NFCOURSE_CHROMIUM at a Chromium or Chrome binary. Never run "
        "`playwright install`: the test uses the system's Chromium."
    )


def wait_until(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5):
    """Poll ``check()`` until it returns something truthy; return it, or fail saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LabServer:
    """``python -m jupyterlab`` on 127.0.0.1, serving ``root``, state kept under ``tmp``.

    ``app_settings``: a folder laid out like JupyterLab's application settings
    directory (``overrides.d/*.json``), used as that directory, as `make lab`
    installs the course's ``lab/settings/`` into .venv's JupyterLab.
    """

    def __init__(self, root: Path, tmp: Path, app_settings: Path | None = None,
                 start_timeout: float = 90):
        self.root, self.tmp = root, tmp
        self.token = secrets.token_hex(24)
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "jupyterlab.log"
        dirs = {name: tmp / name for name in
                ("settings", "workspaces", "config", "data", "runtime", "ipython")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        app_settings_dir = tmp / "app-settings"
        if app_settings is not None:
            shutil.copytree(app_settings, app_settings_dir)
        else:
            app_settings_dir.mkdir()
        for name, values in LAB_SETTINGS.items():
            path = dirs["settings"] / f"{name}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = dict(os.environ)
        for var in ("MPLBACKEND", "JUPYTER_PATH", "JUPYTER_TOKEN", "JUPYTER_CONFIG_PATH"):
            env.pop(var, None)  # the kernel uses the inline backend, as for a learner
        env.update(
            OMP_NUM_THREADS="1",
            JUPYTER_CONFIG_DIR=str(dirs["config"]),
            JUPYTER_DATA_DIR=str(dirs["data"]),
            JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
            JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
            JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
            IPYTHONDIR=str(dirs["ipython"]),
            JUPYTER_PREFER_ENV_PATH="1",
        )
        cmd = [
            sys.executable, "-m", "jupyterlab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
            f"--IdentityProvider.token={self.token}",
            f"--LabApp.user_settings_dir={dirs['settings']}",
            f"--LabApp.workspaces_dir={dirs['workspaces']}",
            f"--LabApp.app_settings_dir={app_settings_dir}",
            f"--LabApp.default_url={LESSON_00_URL}",
        ]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            wait_until(f"JupyterLab to answer on {self.base} (log: {self.log_path})",
                       self._ready, start_timeout)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            self.api("GET", "/api/status")
            return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def printed_urls(self) -> list[str]:
        """The URLs the server printed for a person to open (its log)."""
        text = self.log_path.read_text(errors="replace")
        return sorted(set(re.findall(rf"http://127\.0\.0\.1:{self.port}/\S*", text)))

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}{path}{sep}token={self.token}"

    def api(self, method: str, path: str, token: bool = True, timeout: float = 10) -> Any:
        headers = {"Authorization": f"token {self.token}"} if token else {}
        req = urllib.request.Request(self.base + path, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def status_without_token(self, path: str = "/api/kernels") -> int:
        try:
            self.api("GET", path, token=False)
        except urllib.error.HTTPError as err:
            return err.code
        return 200

    def shutdown_session(self, notebook: str) -> int:
        """Shut down the kernel of ``notebook`` (a path relative to the root) through REST.

        Returns how many sessions (kernels) were shut down.
        """
        found = [s for s in self.api("GET", "/api/sessions") if s.get("path") == notebook]
        for session in found:
            self.api("DELETE", f"/api/sessions/{session['id']}", timeout=30)
        return len(found)

    def shutdown_kernels(self) -> list[str]:
        """Shut down every kernel through REST; return their ids."""
        ids = [k["id"] for k in self.api("GET", "/api/kernels")]
        for kernel_id in ids:
            self.api("DELETE", f"/api/kernels/{kernel_id}", timeout=30)
        return ids

    def leftover_pids(self) -> list[int]:
        """Processes (kernels) started for this server: their command line names its tmp dir."""
        me, found = os.getpid(), []
        marker = str(self.tmp).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                if marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def stop(self) -> list[int]:
        """Stop kernels (REST), then the server; return the pids that had to be killed."""
        if self.proc.poll() is None:
            try:
                self.shutdown_kernels()
            except (urllib.error.URLError, OSError, ValueError):
                pass  # the server is gone or broken: SIGTERM below still stops it
            self.proc.terminate()  # a Jupyter server stops cleanly on SIGTERM
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        killed = []
        try:
            wait_until("the kernels to exit", lambda: not self.leftover_pids(), 15)
        except TimeoutError:
            for pid in self.leftover_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
        return killed


def copy_course(repo: Path, dest: Path, folders=("notebooks",)) -> Path:
    """Copy the lesson notebooks (``*.ipynb`` of ``folders``) into ``dest``; return ``dest``."""
    for folder in folders:
        (dest / folder).mkdir(parents=True, exist_ok=True)
        for nb in sorted((repo / folder).glob("*.ipynb")):
            shutil.copy2(nb, dest / folder / nb.name)
    return dest


# --- driving a notebook in JupyterLab ------------------------------------------------------------

PROMPTS_JS = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
    .map(e => e.textContent.trim())"""

STDERR_JS = """() => [...document.querySelectorAll(
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map(e => {
        const cell = e.closest('.jp-CodeCell');
        const prompt = cell ? cell.querySelector('.jp-InputPrompt').textContent.trim() : '?';
        return prompt + ' ' + e.innerText;
    })"""

IMAGE_DIGEST_JS = """async (img) => {
    if (!img.src || !img.complete || img.naturalWidth === 0) return null;
    const bytes = await (await fetch(img.src)).arrayBuffer();
    const digest = await crypto.subtle.digest('SHA-256', bytes);
    return [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join('')
        + ':' + bytes.byteLength + ':' + img.naturalWidth + 'x' + img.naturalHeight;
}"""

ERROR_TEXT = re.compile(r"Traceback|\b\w*(Error|Exception)\b")


def kernel_is_idle(page) -> bool:
    status = page.locator(".jp-StatusBar-Widget").all_inner_texts()
    return any(re.search(r"\|\s*Idle\b", text) for text in status)


def prompts(page) -> list[str]:
    return page.evaluate(PROMPTS_JS)


def menu(page, top: str, command: str) -> None:
    """Click menu ``top`` of the menu bar, then its item that runs ``command``."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{top}$")).click()
    page.locator(f'li.lm-Menu-item[data-command="{command}"]').click()


def menu_item(page, top: str, *labels: str) -> None:
    """Click menu ``top``, then the items labelled exactly ``labels`` (submenus, then the item)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{re.escape(top)}$")).click()
    for label in labels:
        exact = page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(label)}$"))
        page.locator(".lm-Menu:visible li.lm-Menu-item").filter(has=exact).first.click()


def run_all(page, idle_timeout: float, run_timeout: float) -> list[str]:
    """Wait for Idle, then Run > Run All Cells; wait until no cell is queued or running.

    Returns the final input prompts (``[n]:`` for a cell that ran, ``[ ]:`` for
    one that did not, e.g. after an error stopped the run).
    """
    wait_until("the kernel status bar to read Idle", lambda: kernel_is_idle(page), idle_timeout)
    menu(page, "Run", "runmenu:run-all")
    wait_until(
        "Run All to start (a cell prompt showing [*] or a number)",
        lambda: any(p == "[*]:" or re.fullmatch(r"\[\d+\]:", p) for p in prompts(page)),
        60,
    )

    def finished() -> bool:
        return "[*]:" not in prompts(page) and kernel_is_idle(page)

    wait_until("every cell to finish (no [*] prompt left, kernel Idle)", finished, run_timeout,
               interval=1)
    return prompts(page)


def code_cell(page, source: str):
    """The code cell whose text contains ``source`` (exactly one must)."""
    cells = page.locator(".jp-CodeCell").filter(
        has=page.locator(".jp-InputArea-editor", has_text=source)
    )
    count = cells.count()
    assert count == 1, (
        f"expected one code cell containing {source!r}, found {count}: the lesson changed, "
        "update tests/test_browser.py"
    )
    return cells.first


def image_digest(img) -> str | None:
    """SHA-256, size and pixel size of the PNG an ``<img>`` shows (``None``: not loaded)."""
    return img.evaluate(IMAGE_DIGEST_JS)


def save_notebook(page, timeout: float = 30) -> None:
    """File > Save Notebook, then wait until the tab is no longer dirty."""
    menu(page, "File", "docmanager:save")
    wait_until(
        "the notebook to be saved (the tab's dirty mark to go)",
        lambda: page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty").count() == 0,
        timeout,
    )
