"""Make the README's lesson map pictures: one figure per lesson, from the lesson itself.

Each solution notebook marks one plotting cell with the tag ``lesson-picture``.
This script runs every solution notebook in a fresh kernel and saves that
cell's first PNG output as ``docs/figures/lesson-NN.png``.

    python docs/lesson_pictures.py
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
TAG = "lesson-picture"


def tagged_cell(nb: nbformat.NotebookNode) -> int:
    """The index of the one cell tagged ``lesson-picture``."""
    found = [i for i, c in enumerate(nb.cells) if TAG in c.metadata.get("tags", [])]
    if len(found) != 1:
        raise ValueError(f"expected one cell tagged {TAG!r}, found {len(found)}")
    return found[0]


def picture(path: Path) -> bytes:
    """Run the notebook at ``path`` and return the tagged cell's first PNG."""
    nb = nbformat.read(path, as_version=4)
    index = tagged_cell(nb)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    for output in nb.cells[index].get("outputs", []):
        if "image/png" in output.get("data", {}):
            return base64.b64decode(output["data"]["image/png"])
    raise ValueError(f"{path.name}: the cell tagged {TAG!r} shows no PNG figure")


def main() -> int:
    out = ROOT / "docs" / "figures"
    out.mkdir(parents=True, exist_ok=True)
    only = sys.argv[1:]  # lesson numbers, e.g. 07 08; all lessons when none
    for path in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")):
        if only and path.name[:2] not in only:
            continue
        target = out / f"lesson-{path.name[:2]}.png"
        target.write_bytes(picture(path))
        print(f"{target.relative_to(ROOT)}  (from {path.name})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
