"""Smoke test of the benchmark suite: every section at a tiny budget, into a temporary page.

Benchmarks are not tests (nothing here is timed or compared); this only checks that
``python -m benchmarks`` runs end to end and writes every table, with a row for every
library that is installed, and that without zuko and nflows it still runs the nfcourse
rows and says which libraries were missing.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import nbformat
import pytest

# benchmarks/ is a folder of the repository, not part of the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import __main__ as bench  # noqa: E402
from benchmarks import ablation, common, digits, models, report, tabular, vi  # noqa: E402

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
    variational = _section(page, "vi")
    assert "| nfcourse planar K=2 |" in variational
    assert "### The flows of lesson 08 on U1-U4" in variational
    assert "| U2 | RealNVP, 4 steps |" in variational
    assert "best lesson-08 flow on U2: KL <= 0.05" in page
    images = _section(page, "digits")
    assert f"| {digits.IMAGE_FLOW} |" in images and "| independent pixels |" in images
    assert ("| zuko NSF |" in images) == ("zuko" in used)
    assert "image flow on the digits: beats Gaussian" in page
    matching = _section(page, "continuous")
    assert "| rings | flow matching |" in matching and "| rings | NSF |" in matching
    assert "best flow matching on rings no worse than the best discrete flow" in page
    assert "| 00_tiny.ipynb |" in _section(page, "lessons")
    assert "Not in these results" not in page
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
    assert "Not in these results" in _section(page, "vi")


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


# --- one page from several results files ------------------------------------------------------


def _suite_file(vi_rows: list[dict]) -> dict:
    """A made-up results file of ``python -m benchmarks --json`` with a vi section."""
    return {
        "meta": {
            "command": "python -m benchmarks --sections vi",
            "date": "2026-01-01",
            "machine": {
                "cpu": "a CPU",
                "cores": 2,
                "system": "an OS",
                "load_start": "0.5",
                "load_end": "0.6",
            },
            "versions": {"torch": "2"},
            "libraries": {"used": ["nfcourse"], "left_out": {}},
            "threads": 1,
            "budget": "full",
            "section_s": {"vi": 10.0},
            "total_s": 10.0,
            "seeds": {"VI": "0"},
            "partial": False,
        },
        "vi": {"config": asdict(vi.VIConfig(flow_steps=111)), "rows": vi_rows, "curves": []},
    }


def _planar_row(seed: int, kl: float) -> dict:
    return {"model": "nfcourse planar K=2", "K": 2, "seed": seed, "kl": kl, "se": 0.01,
            "right": 0.5, "collapsed": False, "seconds": 1.0, "reached_s": None,
            "diverged_at": None, "params": 10}  # fmt: skip


def _energy_row(flow: str, energy: str, seed: int, steps: int, anneal: int, kl: float) -> dict:
    return {"part": "energies", "flow": flow, "energy": energy, "seed": seed, "steps": steps,
            "lr": 0.01, "anneal_steps": anneal, "kl": kl, "se": 0.01, "seconds": 2.0,
            "diverged_at": None, "exploded": False, "params": 20}  # fmt: skip


def _energies(steps: int, anneal: int, long_steps: int, kls: tuple[float, float]) -> list[dict]:
    rows = []
    for seed, kl in enumerate(kls):
        rows += [_energy_row("RealNVP", "U3", seed, steps, a, kl) for a in (anneal, 0)]
        rows.append(_energy_row("NSF", "U3", seed, long_steps, 200, kl / 2))
    return rows


def _digits_file() -> dict:
    rows = [{"model": "independent pixels", "seed": 0, "bits": 2.43, "se_test": 0.01}]
    for name, bits in ((digits.IMAGE_FLOW, (2.10, 2.12)), ("zuko NSF", (2.00, 2.02))):
        rows += [
            {"model": name, "seed": s, "bits": b, "se_test": 0.01, "steps": 9, "params": 5}
            for s, b in enumerate(bits)
        ]
    return {
        "meta": {"date": "2026-02-02", "machine": "machine D", "load": "1/1/1",
                 "command": "python -m benchmarks.digits --budget-s 7", "budget": "7 s"},
        "config": asdict(digits.DigitsConfig(budget_s=7.0)),
        "rows": rows,
    }  # fmt: skip


def _vi_file(kls: tuple[float, float]) -> dict:
    cfg = vi.VIConfig(layers=(), flows=("RealNVP",), energies=("U3",), flow_steps=300)
    return {
        "meta": {"date": "2026-03-03", "command": "python -m benchmarks.vi out.json",
                 "threads": 1, "seconds": 60.0, "complete": True},
        "vi": {"config": asdict(cfg), "rows": _energies(300, 60, 2000, kls), "curves": []},
    }  # fmt: skip


def _tabular_file() -> dict:
    """A made-up results file of ``python -m benchmarks --sections tabular --json``."""
    suite = _suite_file([])
    meta = {**suite["meta"], "command": "python -m benchmarks --sections tabular",
            "date": "2026-04-04", "section_s": {"tabular": 60.0}, "total_s": 60.0,
            "partial": True, "why_partial": "sections: tabular"}  # fmt: skip
    rows = [
        {"dataset": "mixture_4d", "dim": 4, "library": lab.split()[0], "model": lab.split()[1],
         "label": lab, "seed": seed, "nll": 5.0 + gap, "entropy": 5.0, "entropy_se": 0.001,
         "gap": gap, "params": 100, "seconds": 1.0, "ms_per_step": 1.0, "diverged_at": None}
        for lab, gaps in (("nfcourse MAF", (0.10, 0.24)), ("zuko MAF", (0.20, 0.20)),
                          (report.PAIRED_REALNVP, (0.15, 0.21)))
        for seed, gap in enumerate(gaps)
    ]  # fmt: skip
    return {"meta": meta, "tabular": {"config": asdict(tabular.TabularConfig()), "rows": rows}}


def _write(tmp_path, name: str, data: dict) -> str:
    import json

    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_render_merges_section_files_and_says_where_each_comes_from(tmp_path):
    """The page from the suite's file plus a digits file and a vi file (made-up numbers, no
    training): every section's table and targets, each part of the vi section from its own
    file (with that file's budget), and the header names the run behind each section."""
    suite = _suite_file([_planar_row(0, 0.2), _planar_row(1, 0.3)]
                        + _energies(111, 22, 999, (9.0, 9.0)))  # fmt: skip
    files = [
        _write(tmp_path, "suite.json", suite),
        _write(tmp_path, "digits.json", _digits_file()),
        _write(tmp_path, "vi.json", _vi_file((0.04, 0.08))),
        _write(tmp_path, "tabular.json", _tabular_file()),
    ]
    output = tmp_path / "page.md"
    merged = tmp_path / "merged.json"
    assert bench.main(["--render", *files, "--output", str(output), "--json", str(merged)]) == 0
    page = output.read_text()
    variational = _section(page, "vi")
    assert "| nfcourse planar K=2 |" in variational  # the suite's planar part is kept
    assert "| 0.250 (0.200–0.300) |" in variational  # (the median of two is their mean)
    assert "| U3 | RealNVP | 20 | 0.060 (0.040–0.080) |" in variational  # the vi file's
    assert "9.000" not in page  # the suite's own lesson-08 rows are replaced
    assert "300 steps of 256 samples" in variational and "111 steps" not in variational
    assert "| U3 | NSF, 2000 steps |" in variational
    assert "best lesson-08 flow on U3: KL <= 0.05 (mean over seeds) | RealNVP 0.060 at 300" in page
    assert "yes, with the longer run" in page  # NSF 0.030 at 2000 steps
    images = _section(page, "digits")
    assert "| nfcourse image flow | 2.110 | 2.100 - 2.120 |" in images
    assert "- beats independent pixels by more than the seed-to-seed spread: met" in images
    assert "image flow on the digits: against zuko NSF at equal training time" in page
    assert "Not in these results: run it (`python -m benchmarks --sections continuous`)" in (
        _section(page, "continuous")
    )
    header = page[: page.index("## The targets")]
    assert "Variational inference (the planar flows on U1): the run(s) above." in header
    assert (
        f"- {digits.TITLE}: `python -m benchmarks.digits --budget-s 7` on 2026-02-02; "
        "machine D; load 1/1/1; 7 s." in header
    )
    assert (
        "- Variational inference (the flows of lesson 08): `python -m benchmarks.vi out.json` "
        "on 2026-03-03, in 1.0 min; 1 torch thread." in header
    )
    assert "| nfcourse MAF | 0.170 +- 0.070 |" in _section(page, "tabular")
    assert "> **Partial section**: sections: tabular;" in _section(page, "tabular")
    # the structural control: paired with zuko MAF and explained, but not a target
    assert "| nfcourse RealNVP-2x - zuko MAF | -0.020 +- 0.030 (1/2) |" in page
    assert "the control of why RealNVP trails beyond two dimensions" in page
    assert "RealNVP-2x gap" not in page
    assert "Partial section" not in _section(page, "digits")
    assert (
        "| nfcourse MAF gap on the D = 4 mixture <= zuko MAF's | 0.170 vs 0.200; paired by seed "
        "-0.030 +- 0.070 (standard error), no worse on 1 of 2 seeds | yes |" in page
    )
    assert (
        f"- {report.SECTIONS['tabular']}: `python -m benchmarks --sections tabular` on "
        "2026-04-04, in 1.0 min; a CPU, 2 cores; load 0.5 at the start, 0.6 at the end; 1 torch "
        "thread; **partial**: sections: tabular." in header
    )
    # the merge saved as one file renders to the same page
    again = tmp_path / "again.md"
    assert bench.main(["--render", str(merged), "--output", str(again)]) == 0
    assert again.read_text() == page


def test_render_needs_the_suite_file_first(tmp_path):
    digits_only = _write(tmp_path, "digits.json", _digits_file())
    with pytest.raises(ValueError, match="first results file must be one of"):
        bench.main(["--render", digits_only, "--output", str(tmp_path / "page.md")])
    with pytest.raises(ValueError, match="other.json: no benchmark section in it"):
        report.normalize({"meta": {}, "config": {}, "rows": []}, "other.json")


def test_common_paired_differences_and_standard_errors():
    rows = [
        {"dataset": d, "seed": s, "label": lab, "gap": g}
        for d, s, lab, g in [
            ("a", 0, "x", 1.0), ("a", 0, "y", 0.5), ("a", 1, "x", 2.0), ("a", 1, "y", 2.5),
            ("a", 2, "x", 3.0),  # no partner: left out
            ("b", 0, "x", float("nan")), ("b", 0, "y", 1.0),  # diverged: left out
        ]
    ]  # fmt: skip
    assert common.paired(rows, "x", "y") == {"a": (0.0, pytest.approx(0.5), 1, 2)}
    assert common.mean_se([1.0, 3.0]) == (2.0, 1.0)
    mean, se = common.mean_se([4.0])
    assert mean == 4.0 and se != se
    assert common.mean_se([4.0], single=0.0) == (4.0, 0.0)


def test_a_continuous_results_file_keeps_its_budget_sweep_and_its_tuning():
    """``python -m benchmarks.continuous --sweep`` and ``--tune`` add ``sweep`` and
    ``tuning`` parts to the section's file; the page is rendered from the file, so the
    merge must keep them."""
    sweep = {"meta": {"command": "c"}, "config": {}, "rows": [{"budget_s": 20.0}]}
    tuning = [{"meta": {"command": "t"}, "config": {}, "rows": [{"lr": 0.01}]}]
    data = {"meta": {"date": "d"}, "config": {"field_hidden": [8]}, "rows": [],
            "sweep": sweep, "tuning": tuning}  # fmt: skip
    section = report.normalize(data)["continuous"]
    assert section["sweep"] == sweep and section["tuning"] == tuning


def test_nfcourse_maf_with_zukos_clamp_is_zukos_maf():
    """The weight copy behind the page's D = 16 note: with zuko's MAF's weights, nfcourse's
    MAF with zuko's log-scale clamp gives the same log-densities. Planted: leaving the
    reversed layers' columns unflipped breaks it."""
    import torch

    theirs, ours = ablation.copy_zuko_maf(dim=6, layers=3, hidden=(16, 16), seed=1)
    x = 2 * torch.randn(200, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(ours.log_prob(x), theirs.log_prob(x), atol=1e-4)
