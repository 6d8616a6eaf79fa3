"""``python -m nfcourse doctor``: is this environment ready for the course?

Each check prints one line: ``ok``, ``note`` (worth knowing, nothing to fix)
or ``fix`` (with what to do). The exit code is 1 when something needs fixing.
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys
from dataclasses import dataclass
from pathlib import Path

# The versions the course was last tested with (the Makefile installs TORCH=torch==2.13.0).
TESTED = {
    "torch": "2.13.0",
    "jupyterlab": "4.6.6",
    "ipywidgets": "8.1.9",
    "jupyterlab_widgets": "3.0.17",
    "matplotlib": "3.11.2",
    "seaborn": "0.13.2",
    "numpy": "2.4.6",
    "tqdm": "4.70.1",
    "scikit-learn": "1.9.1",
    "torchdiffeq": "0.2.5",
    "nbclient": "0.11.0",
    "nbformat": "5.11.1",
    "nbval": "0.11.0",
}


@dataclass
class Finding:
    status: str  # "ok", "note" or "fix"
    what: str
    advice: str = ""

    @property
    def line(self) -> str:
        mark = {"ok": "✅", "note": "ℹ️ ", "fix": "❌"}[self.status]
        return f"{mark} {self.what}" + (f"\n     -> {self.advice}" if self.advice else "")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _major_minor(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("+")[0].split(".")[:2] if p.isdigit())


def check_python() -> Finding:
    v = sys.version_info
    if v < (3, 10):
        return Finding(
            "fix", f"Python {v.major}.{v.minor}", "the course needs Python 3.10 or newer"
        )
    return Finding("ok", f"Python {v.major}.{v.minor}.{v.micro} ({sys.executable})")


def check_packages() -> list[Finding]:
    out = []
    for name, tested in TESTED.items():
        have = _version(name)
        if have is None:
            out.append(
                Finding(
                    "fix",
                    f"{name} is not installed",
                    "run `make lab` (or `pip install -e .` in the course folder)",
                )
            )
        elif _major_minor(have) != _major_minor(tested):
            out.append(
                Finding(
                    "note",
                    f"{name} {have} (the course was tested with {tested})",
                    "it probably works; if something breaks, `make clean-venv lab` "
                    "installs the tested set",
                )
            )
        else:
            out.append(Finding("ok", f"{name} {have}"))
    return out


def check_torch() -> list[Finding]:
    import torch

    out = [
        Finding(
            "ok",
            f"torch {torch.__version__} computes on the CPU "
            f"({torch.get_num_threads()} threads); the lessons use one thread",
        )
    ]
    if torch.cuda.is_available():
        out.append(
            Finding(
                "note",
                f"a GPU is present ({torch.cuda.get_device_name(0)})",
                "not needed: every lesson runs on the CPU",
            )
        )
    else:
        out.append(Finding("ok", "no GPU, and none is needed"))
    if "+cu" in torch.__version__ and not torch.cuda.is_available():
        out.append(
            Finding(
                "note",
                "this is a CUDA build of torch on a machine without a GPU",
                "it works, but a CPU build is several GB smaller (see README)",
            )
        )
    x = torch.randn(64, 2)
    if not torch.isfinite(x @ x.T).all():  # pragma: no cover - a broken BLAS
        out.append(
            Finding("fix", "torch's matrix product returns non-finite numbers", "reinstall torch")
        )
    return out


def check_widgets() -> Finding:
    ipyw, labw = _version("ipywidgets"), _version("jupyterlab_widgets")
    if ipyw is None or labw is None:
        return Finding(
            "fix",
            "ipywidgets or jupyterlab_widgets is missing: sliders will not show",
            "pip install 'ipywidgets>=8.1,<9' (it brings jupyterlab_widgets)",
        )
    if _major_minor(ipyw)[0] != 8 or _major_minor(labw)[0] != 3:
        return Finding(
            "fix",
            f"ipywidgets {ipyw} with jupyterlab_widgets {labw} do not match",
            "install them together: pip install -U 'ipywidgets>=8.1,<9'",
        )
    import jupyterlab_widgets

    ext = Path(jupyterlab_widgets.__file__).parent / "labextension"
    prefix_ext = (
        Path(sys.prefix) / "share/jupyter/labextensions/@jupyter-widgets/jupyterlab-manager"
    )
    if not (ext.is_dir() or prefix_ext.is_dir()):
        return Finding(
            "fix",
            "the JupyterLab widgets extension is not installed",
            "pip install --force-reinstall jupyterlab_widgets, then restart JupyterLab",
        )
    return Finding("ok", f"widgets: ipywidgets {ipyw} with jupyterlab_widgets {labw}")


def check_kernel() -> Finding:
    try:
        from jupyter_client.kernelspec import KernelSpecManager
    except ImportError:
        return Finding("fix", "jupyter_client is missing", "run `make lab`")
    specs = KernelSpecManager().find_kernel_specs()
    if "python3" not in specs:
        return Finding(
            "fix",
            "no 'python3' kernel: notebooks would say 'kernel not found'",
            f"{sys.executable} -m ipykernel install --sys-prefix",
        )
    return Finding("ok", "the notebooks' 'python3' kernel is available")


def check_course() -> Finding:
    import nfcourse

    root = Path(nfcourse.__file__).resolve().parents[1]
    lessons = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not lessons:
        return Finding(
            "note",
            f"nfcourse {nfcourse.__version__} from {root}, but no lessons there",
            "open the course folder you cloned (make lab)",
        )
    return Finding(
        "ok", f"nfcourse {nfcourse.__version__}: {len(lessons)} lessons in {root / 'notebooks'}"
    )


def run() -> list[Finding]:
    return [
        check_python(),
        *check_torch(),
        *check_packages(),
        check_widgets(),
        check_kernel(),
        check_course(),
    ]


def main() -> int:
    findings = run()
    for f in findings:
        print(f.line)
    fixes = sum(f.status == "fix" for f in findings)
    print("\nAll good: open the course with `make lab`." if not fixes else f"\n{fixes} to fix.")
    return 1 if fixes else 0
