"""The package's layout keeps its promises: the dependency rule of docs/architecture.md
(checked by import-linter, configured in pyproject.toml), and ``import nfcourse`` loads no
plotting or widget library."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PICTURES = ("matplotlib", "seaborn", "ipywidgets")
# import-linter's command line (lint-imports), run by this Python
LINT = "import sys, importlinter.cli as cli; sys.exit(cli.lint_imports_command())"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Run import-linter on the package under ``root`` with the contracts of pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )


def test_the_dependency_rule_holds():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("layers/base.py", "from ..viz import plots", "Each part imports only the parts below it"),
        ("data/datasets.py", "from ..course import check", "Each part imports only"),
        ("nets.py", "from .layers import Affine", "Each part imports only"),
        ("flow.py", "import matplotlib.pyplot", "Only the pictures and the course load"),
        ("train.py", "import ipywidgets", "Only the pictures and the course load"),
    ],
)
def test_a_forbidden_import_is_caught(tmp_path, module, line, contract):
    """A copy of the package with one forbidden import planted fails the check."""
    shutil.copytree(ROOT / "nfcourse", tmp_path / "nfcourse")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "nfcourse" / module
    target.write_text(target.read_text() + f"\n{line}  # planted\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "0 broken" not in result.stdout
    broken = result.stdout.split("Broken contracts")[-1]
    assert contract in broken, result.stdout


def test_import_nfcourse_loads_no_pictures():
    code = (
        "import sys, nfcourse as nf\n"
        f"print(sorted(m for m in {PICTURES!r} if m in sys.modules))\n"
        "nf.realnvp(2).log_prob(nf.datasets.moons().sample(3))\n"
        "from nfcourse import check, plots, widgets\n"
        "print(check.__name__, plots.__name__, widgets.__name__, nf.plots is plots)\n"
        f"print(sorted(m for m in {PICTURES!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    before, names, after = result.stdout.splitlines()
    assert before == "[]"
    assert names == "nfcourse.course.check nfcourse.viz.plots nfcourse.viz.widgets True"
    assert after == "['ipywidgets', 'matplotlib']"  # seaborn's palette is copied, not imported


def test_an_unknown_attribute_is_a_plain_attribute_error():
    import nfcourse

    with pytest.raises(AttributeError, match="has no attribute 'plot'"):
        nfcourse.plot  # noqa: B018
    assert {"check", "plots", "widgets"} <= set(dir(nfcourse))
