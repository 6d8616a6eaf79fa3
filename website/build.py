"""The course's static site: ``python website/build.py [OUT] [--only NN ...]`` (``make site``).

The site is the course as a reader meets it before installing anything: the README's lesson
map as its front page, every solution notebook executed at build time (figures and outputs
included; a lesson that raises stops the build), the instructors' guide, the benchmarks and
the lesson run times. Each lesson page links to its exercise notebook for download.

It builds with Sphinx, myst-nb and sphinx-book-theme (the ``site`` extra), all from the
package index, and needs no internet: math is rendered by the MathJax copy that the
``jupyter-server-mathjax`` package ships, served from the site itself.

The pages' sources are staged in ``OUT/src`` (links rewritten from the repository's layout
to the site's), then Sphinx writes ``OUT/html`` (``website/conf.py``). Notebooks run with
one torch thread each, as the lessons ask; ``OUT/cache`` keeps
executed notebooks whose source did not change (myst-nb's cache), so a rebuild after a
prose edit is quick.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupyter_server_mathjax

ROOT = Path(__file__).resolve().parents[1]
PAGES = {  # docs/ pages on the site, in the navigation's order after the lessons
    "instructors.md": "For instructors",
    "benchmarks.md": "Benchmarks",
    "lesson-times.md": "Lesson run times",
    "hub.md": "A class on one JupyterHub",
    "classroom.md": "Sizing a class's machine",
}


def lesson_map() -> str:
    """The README's section 'The lessons' up to its first subsection, links made the site's."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## The lessons")
    end = readme.index("\n### ", start)
    text = readme[start:end].replace("## The lessons", "## The lessons", 1)
    text = re.sub(r"\]\(notebooks/(\d\d_[a-z0-9_]+)\.ipynb\)", r"](lessons/\1.ipynb)", text)
    text = text.replace('src="docs/figures/', 'src="figures/')
    return re.sub(r"\]\(docs/([a-z-]+\.md)\)", r"](\1)", text)


def index_page(lessons: list[Path]) -> str:
    readme = (ROOT / "README.md").read_text()
    intro = readme.split("\n## ", 1)[0].split("\n", 1)[1].strip()
    toc = "\n".join(f"lessons/{p.stem}" for p in lessons)
    pages = "\n".join(Path(name).stem for name in PAGES)
    return f"""# nfcourse: normalizing flows, hands on

{intro}

Each lesson page below is the lesson with its solutions, run when this site was built.
To work through a lesson yourself, download its exercise notebook (linked at the top of
each lesson) or, better, get the whole course and open it with `make lab` (the
repository's README: two commands).

{lesson_map()}

```{{toctree}}
:hidden:
:caption: Lessons

{toc}
```

```{{toctree}}
:hidden:
:caption: For instructors and maintainers

{pages}
```
"""


def stage_lesson(solution: Path, target: Path) -> None:
    """The solution notebook, with a note under its title that links its exercise version."""
    nb = json.loads(solution.read_text())
    note = (
        f"This page is lesson {solution.name[:2]} with its solutions, executed when the site "
        "was built. The exercise version, to work through yourself in JupyterLab: "
        f"{{download}}`{solution.name} <../exercises/{solution.name}>`. Slider explorers "
        "need a running kernel: here they show as a line of text."
    )
    cell = {"cell_type": "markdown", "id": "site-exercise-link", "metadata": {}, "source": note}
    nb["cells"].insert(1, cell)
    target.write_text(json.dumps(nb, indent=1))


def stage(src: Path, only: list[str]) -> None:
    if src.exists():
        shutil.rmtree(src)
    (src / "lessons").mkdir(parents=True)
    lessons = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    lessons = [p for p in lessons if not only or p.name[:2] in only]
    for solution in lessons:
        stage_lesson(solution, src / "lessons" / solution.name)
    shutil.copytree(ROOT / "notebooks", src / "exercises", ignore=shutil.ignore_patterns(".*"))
    shutil.copytree(ROOT / "docs" / "figures", src / "figures")
    extra = src.parent / "extra"
    if extra.exists():
        shutil.rmtree(extra)
    shutil.copytree(ROOT / "docs" / "figures", extra / "figures")
    for name in PAGES:
        shutil.copy(ROOT / "docs" / name, src / name)
    (src / "index.md").write_text(index_page(lessons))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default=ROOT / "build" / "site", type=Path)
    parser.add_argument(
        "--only", nargs="+", default=[], metavar="NN", help="a preview with these lessons only"
    )
    args = parser.parse_args(argv)
    out = args.out.resolve()  # Sphinx reads the paths below from the conf folder
    src = out / "src"
    stage(src, args.only)
    static = out / "static"
    if not (static / "mathjax" / "MathJax.js").exists():
        shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", static / "mathjax")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "NFCOURSE_SITE_CACHE": str(out / "cache"),
        "NFCOURSE_SITE_STATIC": str(static),
        "NFCOURSE_SITE_EXTRA": str(out / "extra"),
    }
    command = [
        sys.executable, "-m", "sphinx", "-b", "html", "-c", str(ROOT / "website"),
        "-W", "--keep-going", "-q", str(src), str(out / "html"),
    ]  # fmt: skip
    return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main())
