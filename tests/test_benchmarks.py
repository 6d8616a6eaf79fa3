"""Smoke test of the benchmark suite: every section at a tiny budget, into a temporary page.

Benchmarks are not tests (nothing here is timed or compared); this only checks that
``python -m benchmarks`` runs end to end and writes every table, with a row for every
library that is installed, and that without zuko and nflows it still runs the nfcourse
rows and says which libraries were missing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

# benchmarks/ is a folder of the repository, not part of the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import __main__ as bench  # noqa: E402
from benchmarks import ablation, models, report, tabular  # noqa: E402

OTHERS = ("zuko", "nflows")


@pytest.fixture(scope="module", autouse=True)
def _keep_torch_validation():
    """Importing zuko turns off torch.distributions' argument checks for the whole process."""
    import torch

    before = torch.distributions.Distribution._validate_args
    yield
    torch.distributions.Distribution._validate_args = before


@pytest.fixture(scope="module")
def tiny_lessons(tmp_path_factory):
    """A folder with one one-cell lesson notebook (the real ones take minutes)."""
    folder = tmp_path_factory.mktemp("lessons")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1 + 1")]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, folder / "00_tiny.ipynb")
    return folder


def _run(tmp_path, tiny_lessons, *extra: str) -> str:
    output = tmp_path / "benchmarks.md"
    argv = ["--budget", "smoke", "--output", str(output), "--notebooks", str(tiny_lessons), *extra]
    assert bench.main(argv) == 0
    return output.read_text()


def _section(page: str, key: str) -> str:
    """The text of one section of the page (up to the next ``## `` heading)."""
    start = page.index(f"## {report.SECTIONS[key]}")
    end = page.find("\n## ", start + 1)
    return page[start : end if end > 0 else None]


def test_whole_suite_smoke(tmp_path, tiny_lessons):
    page = _run(tmp_path, tiny_lessons)
    assert "Not the final numbers" in page
    used, _ = models.available_libraries()
    quality, speed = _section(page, "quality"), _section(page, "speed")
    for lib in used:
        assert f"| {lib} RealNVP |" in quality or f"| {lib} MAF |" in quality, lib
        assert f"{lib} (ms)" in speed, lib
    for lib in OTHERS:
        if lib in used:
            assert f"nfcourse / {lib}" in speed
        else:
            assert f"**{lib} missing**" in page
    what_mattered = _section(page, "ablation")
    for name in ("RealNVP", "MAF"):
        for variant in ablation.VARIANTS:
            assert f"| {name} | {variant} |" in what_mattered, (name, variant)
    beyond = _section(page, "tabular")
    for lib in {models.parse_model(m)[0] for m in tabular.MODELS} & set(used):
        assert f"| {lib} MAF |" in beyond, lib
    assert "| nfcourse RealNVP |" in beyond and "D = 3" in beyond
    if "zuko" in used:
        assert "| nfcourse MAF - zuko MAF |" in beyond
        assert "nfcourse MAF gap on the D = 3 mixture <= zuko MAF's" in page
    assert "| nfcourse planar K=2 |" in _section(page, "vi")
    assert "| 00_tiny.ipynb |" in _section(page, "lessons")
    assert "Not run in this run" not in page
    for name in ("bench_quality.png", "bench_speed.png", "bench_vi.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 0
        assert f"figures/{name}" in page


def test_runs_without_comparison_libraries(tmp_path, tiny_lessons, monkeypatch):
    """With zuko and nflows not importable, the nfcourse rows run and the page says so."""
    for lib in OTHERS:
        monkeypatch.setitem(sys.modules, lib, None)  # makes `import lib` fail
    page = _run(tmp_path, tiny_lessons, "--sections", "quality", "speed")
    for lib in OTHERS:
        assert f"**{lib} missing**: not installed" in page
        assert f"{lib} (ms)" not in page
        assert f"| {lib} MAF |" not in page
    assert "| nfcourse RealNVP |" in _section(page, "quality")
    assert "nfcourse (ms)" in _section(page, "speed")
    assert "Not run in this run" in _section(page, "vi")


def test_libraries_flag(tmp_path, tiny_lessons):
    page = _run(tmp_path, tiny_lessons, "--libraries", "nfcourse", "--sections", "speed")
    for lib in OTHERS:
        assert f"**{lib} missing**: not selected" in page
        assert f"{lib} (ms)" not in page
    assert "nfcourse (ms)" in page


@pytest.mark.parametrize("name", ["RealNVP", "MAF"])
def test_ablation_variants_revert_exactly_one_default(name):
    """Same seed: "defaults" is nfcourse's own flow; every other variant is a different flow."""
    import torch

    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    reference = models.build("nfcourse", name, 2, 3, (16, 16), seed=7).log_prob(x)
    for variant in ablation.VARIANTS:
        model = ablation.build(name, variant, 3, (16, 16), seed=7)
        log_prob = model.log_prob(x)
        z, _ = model.module.transform.inverse(x)
        assert torch.allclose(model.module.transform(z)[0], x, atol=1e-5), variant
        if variant == "defaults":
            assert torch.equal(log_prob, reference)
        else:
            assert (log_prob - reference).abs().max() > 1e-4, variant


def test_tabular_pairs_models_on_the_same_data():
    """Every model of a seed trains on the same points; the paired differences are right."""
    cfg = tabular.TabularConfig(
        dims=(3,),
        seeds=(0, 1),
        steps=2,
        n_train=64,
        n_test=128,
        entropy_samples=1000,
        models=("nfcourse:MAF", "nfcourse:RealNVP"),
    )
    seen = []

    def build(lib, name, dim, layers, hidden, seed=None):
        model = models.build(lib, name, dim, layers, hidden, seed=seed)
        log_prob = model.log_prob

        def spy(x):
            seen.append((name, seed, x.shape[0], float(x.sum())))
            return log_prob(x)

        model.log_prob = spy
        return model

    rows = tabular.run(cfg, ["nfcourse"], log=lambda m: None, build=build)
    assert [(r["dim"], r["seed"], r["model"]) for r in rows] == [
        (3, 0, "MAF"),
        (3, 0, "RealNVP"),
        (3, 1, "MAF"),
        (3, 1, "RealNVP"),
    ]
    for seed in (0, 1):  # the same minibatches and test points for both models
        maf = [s[2:] for s in seen if s[:2] == ("MAF", seed)]
        nvp = [s[2:] for s in seen if s[:2] == ("RealNVP", seed)]
        assert maf == nvp and len(maf) > 2
    assert all(r["gap"] == r["nll"] - r["entropy"] for r in rows)
    diff = tabular.paired(rows, "nfcourse RealNVP", "nfcourse MAF")[3]
    gaps = {(r["seed"], r["model"]): r["gap"] for r in rows}
    d = [gaps[s, "RealNVP"] - gaps[s, "MAF"] for s in (0, 1)]
    assert diff[0] == pytest.approx(sum(d) / 2) and diff[3] == 2
    assert diff[1] == pytest.approx(abs(d[0] - d[1]) / 2)


@pytest.mark.parametrize("variant", list(ablation.TABULAR_VARIANTS))
def test_tabular_ablation_variants_change_one_thing(variant):
    """Each variant builds an invertible flow; "defaults" is the library's own flow, every
    other variant a different one (another log-density, or another layer stack)."""
    import torch

    applies = ablation.TABULAR_VARIANTS[variant][0]
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    for name in [n for n in ("RealNVP", "MAF") if applies in ("both", n)]:
        model = ablation.build_tabular(name, variant, 4, 3, (16, 16), seed=7)
        reference = models.build("nfcourse", name, 4, 3, (16, 16), seed=7)
        z, _ = model.module.transform.inverse(x)
        assert torch.allclose(model.module.transform(z)[0], x, atol=1e-5)
        same_stack = [type(m) for m in model.module.transform.layers] == [
            type(m) for m in reference.module.transform.layers
        ]
        differs = (model.log_prob(x) - reference.log_prob(x)).abs().max() > 1e-4
        if variant == "defaults":
            assert same_stack and not differs
        else:
            assert differs or not same_stack, (name, variant)
