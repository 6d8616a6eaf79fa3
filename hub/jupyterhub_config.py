# A JupyterHub for a class on one machine: the course's recipe (docs/hub.md).
#
#   NFCOURSE_HUB_PASSWORD='a shared password' .venv/bin/jupyterhub -f hub/jupyterhub_config.py
#
# Learners log in with any user name and the shared password, get their own
# single-user JupyterLab (a local process of the hub's own OS user, home folder
# NFCOURSE_HUB_HOMES), and fetch their own copy of the course with the nbgitpuller
# link of docs/hub.md. The proxy is the pure-Python `configurable-http-proxy`
# (PyPI), so no Node.js is needed.
#
# This is a workshop recipe, not a secure multi-user service: the shared-password
# authenticator lets anyone with the password log in as any learner, and the
# simple spawner runs every learner as the hub's own OS user, so learners can read
# and change each other's files and nothing caps a learner's memory or CPU
# (docs/hub.md, "What this does not isolate").
#
# Settings (environment variables):
#   NFCOURSE_HUB_PASSWORD   the shared password (required, at least 8 characters)
#   NFCOURSE_HUB_USERS      comma-separated learner names allowed to log in (default: any name)
#   NFCOURSE_HUB_STATE      folder for the hub's database, cookie secret and proxy pid file
#                           (default: the folder the hub is started from)
#   NFCOURSE_HUB_HOMES      learners' home folders, "{username}" is the learner's name
#                           (default: $NFCOURSE_HUB_STATE/homes/{username})
#   NFCOURSE_HUB_IP         address the hub listens on (default 127.0.0.1; 0.0.0.0 for a class,
#                           behind HTTPS, see docs/hub.md)
#   NFCOURSE_HUB_PORT       its public port (default 8000)
#   NFCOURSE_HUB_API_PORT, NFCOURSE_HUB_PROXY_API_PORT   internal ports (default 8081, 8001)
#   NFCOURSE_HUB_MAX_LEARNERS   how many learners' servers may run at once (default 40)
#   NFCOURSE_HUB_IDLE_MINUTES   stop an idle kernel, and an idle learner's server, after this
#                               many minutes (default 60)

import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 - provided by JupyterHub when it reads this file

COURSE = Path(__file__).resolve().parent.parent  # the course checkout this file is part of
BIN = Path(sys.executable).parent  # .venv/bin: jupyterhub, configurable-http-proxy, python


def _setting(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise SystemExit(
            f"hub/jupyterhub_config.py: the environment variable {name} is not set. Set it "
            f"before starting the hub, e.g. `{name}='a shared password' .venv/bin/jupyterhub "
            "-f hub/jupyterhub_config.py` (docs/hub.md)."
        )
    return value


def _whole(name: str, default: str) -> int:
    text = _setting(name, default)
    try:
        return int(text)
    except ValueError:
        raise SystemExit(
            f"hub/jupyterhub_config.py: {name} must be a whole number, got {text!r}."
        ) from None


STATE = Path(_setting("NFCOURSE_HUB_STATE", os.getcwd())).resolve()
STATE.mkdir(parents=True, exist_ok=True)
IDLE_SECONDS = 60 * _whole("NFCOURSE_HUB_IDLE_MINUTES", "60")

# --- where the hub listens, and its state -------------------------------------------------------
c.JupyterHub.ip = _setting("NFCOURSE_HUB_IP", "127.0.0.1")
c.JupyterHub.port = _whole("NFCOURSE_HUB_PORT", "8000")
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = _whole("NFCOURSE_HUB_API_PORT", "8081")
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")

# The proxy: the `configurable-http-proxy` command of the pure-Python package (no Node.js).
# It passes a response on only when the whole of it has arrived, and gives up on a
# request after 20 s unless told otherwise; JupyterHub's "your server is starting"
# page and nbgitpuller's progress page are such long responses (event streams), so
# the limit is raised to 10 minutes (in milliseconds).
c.ConfigurableHTTPProxy.command = [
    str(BIN / "configurable-http-proxy"),
    "--proxy-timeout=600000",
]
c.ConfigurableHTTPProxy.api_url = (
    f"http://127.0.0.1:{_whole('NFCOURSE_HUB_PROXY_API_PORT', '8001')}"
)
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")

# --- who may log in -----------------------------------------------------------------------------
# JupyterHub's built-in shared-password authenticator (the successor of the dummy
# authenticator's `password`, deprecated since JupyterHub 5.3): any user name with
# the one password; a name is a learner's folder, so each learner keeps to one name.
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = _setting("NFCOURSE_HUB_PASSWORD")
_users = {u.strip() for u in os.environ.get("NFCOURSE_HUB_USERS", "").split(",") if u.strip()}
if _users:
    c.Authenticator.allowed_users = _users
else:
    c.Authenticator.allow_all = True

# --- each learner's JupyterLab --------------------------------------------------------------------
c.JupyterHub.spawner_class = "simple"  # SimpleLocalProcessSpawner: no OS account per learner
c.SimpleLocalProcessSpawner.home_dir_template = _setting(
    "NFCOURSE_HUB_HOMES", str(STATE / "homes" / "{username}")
)
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]  # this environment's server
c.Spawner.default_url = "/lab"
c.Spawner.environment = {
    # One thread per kernel, as the lessons set it: a learner's kernel keeps to one core.
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    # nbgitpuller's links open JupyterLab (not the classic notebook).
    "NBGITPULLER_APP": "lab",
}
c.Spawner.args = [
    # The course's JupyterLab defaults (lab/settings/: no news pop-up over the lesson).
    f"--LabApp.app_settings_dir={COURSE / 'lab' / 'settings'}",
    # Idle kernels are stopped (their memory comes back), then idle learners' servers.
    f"--MappingKernelManager.cull_idle_timeout={IDLE_SECONDS}",
    "--MappingKernelManager.cull_interval=60",
    f"--ServerApp.shutdown_no_activity_timeout={IDLE_SECONDS}",
]
if os.geteuid() == 0:
    # A hub started as root (a container) runs every learner as root too: JupyterLab
    # refuses that unless told. Better: start the hub as an unprivileged user.
    c.Spawner.args.append("--ServerApp.allow_root=True")
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120

# Limits the hub itself enforces: how many learners' servers run, and start at once.
c.JupyterHub.active_server_limit = _whole("NFCOURSE_HUB_MAX_LEARNERS", "40")
c.JupyterHub.concurrent_spawn_limit = 10
# Spawner.mem_limit and Spawner.cpu_limit are deliberately not set: the local
# process spawners do not enforce them (they only pass MEM_LIMIT / CPU_LIMIT to
# the server as information). Container spawners (DockerSpawner, KubeSpawner) or
# systemd's (SystemdSpawner) do enforce them; see docs/hub.md.

# Stop every learner's server when the hub stops (a class ends, nothing lingers).
c.JupyterHub.cleanup_servers = True
