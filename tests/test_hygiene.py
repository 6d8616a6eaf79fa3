"""Project hygiene: lint, and the conda environment agrees with pyproject.toml."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name


def _split(spec: str) -> tuple[str, str]:
    """'numpy>=1.26,<3' -> ('numpy', '>=1.26,<3'); conda's bracket form is understood too."""
    bracket = re.fullmatch(r"([\w.-]+)\[version='([^']*)'.*\]", spec)
    if bracket:
        name, version = bracket.groups()
    else:
        name, version = re.fullmatch(r"([\w.-]+)\s*(.*)", spec).groups()
    name = name.lower()
    return CONDA_NAMES.get(name, name), version.replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["dev"]
    wanted = dict(_split(s) for s in specs)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    conda = dict(_split(s) for s in env["dependencies"] if isinstance(s, str))
    assert conda.pop("python") == project["requires-python"]
    assert conda.pop("pip") == ""
    assert conda == wanted
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip_section


def test_binder_environment_matches_the_root_one():
    """Binder reads .binder/: the same packages, an exact Python, postBuild installs the course."""
    root = yaml.safe_load((ROOT / "environment.yml").read_text())
    binder = yaml.safe_load((ROOT / ".binder" / "environment.yml").read_text())
    assert binder["channels"] == root["channels"]
    root_deps = dict(_split(s) for s in root["dependencies"] if isinstance(s, str))
    binder_deps = dict(_split(s) for s in binder["dependencies"] if isinstance(s, str))
    assert re.fullmatch(r"=3\.1[0-9]", binder_deps.pop("python"))  # repo2docker: exact version
    root_deps.pop("python")
    assert binder_deps == root_deps
    # repo2docker installs the environment before copying the repository: no `-e .` there
    assert not any(isinstance(d, dict) for d in binder["dependencies"])
    post_build = ROOT / ".binder" / "postBuild"
    assert post_build.stat().st_mode & 0o111, "postBuild must be executable"
    assert "pip install --no-deps -e ." in post_build.read_text()


def test_ruff_passes():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
