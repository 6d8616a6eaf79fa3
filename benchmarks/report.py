"""Write the results of a benchmark run as a Markdown page with seaborn figures.

:func:`write` takes the results dictionary that :mod:`benchmarks.__main__` assembles
(``meta`` plus one entry per section that ran) and writes ``docs/benchmarks.md`` (or any
path) with the figures in a ``figures/`` folder beside it. Every section that did not
run says so, and so does every library that was missing or not selected.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter  # noqa: E402

from . import speed  # noqa: E402

SECTIONS = {
    "quality": "Quality at equal budget",
    "ablation": "What made the difference",
    "tabular": "Beyond two dimensions: Gaussian mixtures",
    "speed": "Speed",
    "vi": "Variational inference: the energies U1-U4",
    "lessons": "Lesson run times",
}


# ----------------------------------------------------------------------------
# small formatting helpers


def _f(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def _spread(values: list[float], digits: int = 2) -> str:
    """``median (min–max)``."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "—"
    med = statistics.median(values)
    if len(values) == 1:
        return _f(med, digits)
    return f"{_f(med, digits)} ({_f(min(values), digits)}–{_f(max(values), digits)})"


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines + [""]


def _save(fig, folder: Path, name: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / name, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f"figures/{name}"


# ----------------------------------------------------------------------------
# the header


def _header(meta: dict) -> list[str]:
    lines = ["# Benchmarks: nfcourse, zuko and nflows side by side", ""]
    if meta.get("partial"):
        lines += [
            "> **Not the final numbers.** This page comes from a "
            f"{meta.get('budget', 'partial')} run ({meta.get('why_partial', 'reduced budget')})"
            ". It shows that the suite works and what the tables look like; run "
            "`python -m benchmarks` for the real ones.",
            "",
        ]
    m = meta["machine"]
    libs = meta["libraries"]
    runs = meta["command"] if isinstance(meta["command"], list) else [meta["command"]]
    commands = " then ".join(f"`{c}`" for c in runs)
    lines += [
        f"Made by {commands} on {meta['date']}, in {meta['total_s'] / 60:.1f} min "
        "(" + ", ".join(f"{k} {v:.0f} s" for k, v in meta["section_s"].items()) + ").",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['system']}; load average "
        f"{m['load_start']} at the start and {m['load_end']} at the end (other work on the "
        "machine slows every library alike within a speed cell, since they are timed in "
        "turns, but not across sections).",
        "- Versions: "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v is not None)
        + ".",
        "- Libraries compared: " + ", ".join(libs["used"]) + ".",
    ]
    for lib, why in libs["left_out"].items():
        lines.append(f"- **{lib} missing**: {why}; its rows are absent below.")
    lines += [
        f"- Torch threads: {meta['threads']} for training (speed: as in each row). Seeds: "
        + "; ".join(f"{k} {v}" for k, v in meta["seeds"].items())
        + " (each seed fixes the data, the initial weights and the minibatches).",
        "",
        "Benchmarks are not tests: timings depend on the machine and on what else runs. "
        "A smoke test runs this suite at a tiny budget; CI times nothing.",
        "",
    ]
    return lines


# ----------------------------------------------------------------------------
# the targets at a glance

# (nfcourse's flow, the flow whose gap it must match or beat)
PAIRS = (
    ("nfcourse MAF", "zuko MAF"),
    ("nfcourse RealNVP", "zuko MAF"),
    ("nfcourse NSF", "zuko NSF"),
)
STEP_OP = "train step"
VI_K, VI_SECONDS = 32, 30.0  # planar K = 32 must reach the target KL within 30 s


def _verdict(ok: bool, miss: str = "") -> str:
    return "yes" if ok else f"**no**{f' ({miss})' if miss else ''}"


def _targets(results: dict) -> list[str]:
    """One row per target of the suite, with the measured figure and whether it is met."""
    rows = []
    if "quality" in results:
        df = pd.DataFrame(results["quality"]["rows"])
        df = df[df["gap"].notna()]
        for d in dict.fromkeys(df["dataset"]):
            sub = df[df.dataset == d]
            for lab, reference in PAIRS:
                ref = sub[sub.label == reference].set_index("seed")["gap"].astype(float)
                ours = sub[sub.label == lab].set_index("seed")["gap"].astype(float)
                diff = (ours - ref).dropna()  # paired by seed: same data, same minibatches
                if diff.empty:
                    continue
                se = diff.std() / math.sqrt(len(diff)) if len(diff) > 1 else math.nan
                noise = f"; paired by seed {diff.mean():+.3f} +- {se:.3f} (standard error)"
                miss = f"by {diff.mean():.3f} nats"
                if not math.isnan(se) and diff.mean() <= 2 * se:
                    miss += ", within seed noise"
                rows.append([
                    f"{lab} gap on {d} <= {reference}'s",
                    f"{ours.mean():.3f} vs {ref.mean():.3f}" + (noise if len(diff) > 1 else ""),
                    _verdict(diff.mean() <= 0, miss),
                ])
    if "tabular" in results:
        rows += _tabular_targets(results["tabular"]["rows"])
    if "speed" in results:
        df = pd.DataFrame(results["speed"]["rows"])
        step = df[df.op == STEP_OP]
        keys = ["threads", "dim", "model"]
        ours = step[step.library == "nfcourse"].set_index(keys)["median_ms"]
        for lib in [lib for lib in dict.fromkeys(step["library"]) if lib != "nfcourse"]:
            ratio = (ours / step[step.library == lib].set_index(keys)["median_ms"]).dropna()
            if ratio.empty:
                continue
            worst = ratio.idxmax()
            rows.append([
                f"train step no slower than {lib} (ratio <= 1.0)",
                f"{int((ratio <= 1.0).sum())} of {len(ratio)} cells; ratio "
                f"{ratio.min():.2f} to {ratio.max():.2f} (worst: {worst[2]}, D = {worst[1]}, "
                f"{worst[0]} thread{'s' if worst[0] > 1 else ''})",
                _verdict(bool((ratio <= 1.0).all()), f"worst by {100 * (ratio.max() - 1):.0f}%"),
            ])
    if "vi" in results:
        cfg = results["vi"]["config"]
        runs = [r for r in results["vi"]["rows"] if r.get("K") == VI_K]
        if runs:
            reached = [r["reached_s"] for r in runs if r["reached_s"] is not None]
            fast = [t for t in reached if t <= VI_SECONDS]
            kl = statistics.median(r["kl"] for r in runs)
            when = f", median {statistics.median(reached):.1f} s" if reached else ""
            rows.append([
                f"planar K = {VI_K} on U1: KL <= {cfg['target_kl']:g} within {VI_SECONDS:g} s",
                f"{len(fast)} of {len(runs)} seeds{when}; final KL median {kl:.3f}",
                _verdict(len(fast) == len(runs), f"{len(runs) - len(fast)} seeds missed"),
            ])
        energy_rows = [r for r in results["vi"]["rows"] if r.get("part") == "energies"]
        if energy_rows:
            rows += _vi_energy_targets(energy_rows, cfg)
    if not rows:
        return ["No section with a target ran.", ""]
    lines = [
        "Every figure below is computed from the tables of this page (gaps: mean over seeds).",
        "",
    ]
    return lines + _table(["target", "measured", "met"], rows, "lll")


# ----------------------------------------------------------------------------
# quality


def _quality(rows: list[dict], cfg: dict, used: list[str], figures: Path) -> list[str]:
    df = pd.DataFrame(rows)
    absent = [
        spec.replace(":", " ")
        for spec in cfg["models"]
        if spec.split(":")[0] in used and spec.replace(":", " ") not in set(df["label"])
    ]
    lines = [
        f"Every model trained by the same loop: {cfg['steps']} Adam steps, batch "
        f"{cfg['batch_size']}, lr {cfg['lr']:g} with cosine decay to 0, {cfg['layers']} "
        f"layers, conditioners with hidden layers {tuple(cfg['hidden'])} (ReLU); "
        f"{cfg['n_train']} training points (fixed per seed), held-out NLL on "
        f"{cfg['n_test']} fresh points drawn with another seed; seeds {tuple(cfg['seeds'])}. "
        "Gap = held-out NLL minus the dataset's entropy (the best reachable NLL) = "
        "KL(p || q), in nats; NLL alone where the density is unknown. Mean over seeds; "
        "lower is better, best of each column in bold.",
        "",
    ]
    if absent:
        lines += [f"Not available (yet) in the installed libraries: {', '.join(absent)}.", ""]
    models = list(dict.fromkeys(df["label"]))
    dsets = list(dict.fromkeys(df["dataset"]))
    entropy = {d: df[df.dataset == d]["entropy"].iloc[0] for d in dsets}
    header = ["model", "params", "ms / step"] + [
        f"{d} gap" if entropy[d] is not None and not pd.isna(entropy[d]) else f"{d} NLL"
        for d in dsets
    ]
    means = {}
    for d in dsets:
        col = "gap" if header[3 + dsets.index(d)].endswith("gap") else "nll"
        sub = df[df.dataset == d]
        means[d] = {lab: sub[sub.label == lab][col].astype(float).mean() for lab in models}
    table = []
    for lab in models:
        params = int(df[df.label == lab]["params"].iloc[0])
        cells = []
        for d in dsets:
            value = means[d].get(lab)
            finite = [v for v in means[d].values() if not pd.isna(v)]
            text = _f(value)
            if finite and not pd.isna(value) and value == min(finite) and len(finite) > 1:
                text = f"**{text}**"
            cells.append(text)
        step_ms = df[df.label == lab]["ms_per_step"].median()
        table.append([lab, f"{params:,}", _f(step_ms, 2), *cells])
    lines += _table(header, table, "lrr" + "r" * len(dsets))
    lines += ["Per run (median and range over seeds):", ""]
    detail = []
    for d in dsets:
        for lab in models:
            sub = df[(df.dataset == d) & (df.label == lab)]
            if sub.empty:
                continue
            diverged = int(sub["diverged_at"].notna().sum())
            detail.append(
                [
                    d,
                    lab,
                    _spread(list(sub["nll"].astype(float)), 3),
                    _spread(list(sub["gap"].astype(float)), 3) if not pd.isna(entropy[d]) else "—",
                    _f(entropy[d], 3) if not pd.isna(entropy[d]) else "unknown",
                    _spread(list(sub["ms_per_step"]), 2),
                    f"{len(sub)}" + (f" ({diverged} diverged)" if diverged else ""),
                ]
            )
    lines += _table(
        ["dataset", "model", "held-out NLL", "gap", "entropy", "ms / step", "seeds"],
        detail,
        "llrrrrr",
    )
    df["score"] = df["gap"].where(df["gap"].notna(), df["nll"]).astype(float)
    grid = sns.catplot(
        data=df,
        x="label",
        y="score",
        col="dataset",
        col_wrap=min(4, len(dsets)),
        kind="point",
        errorbar=("pi", 100),
        linestyle="none",
        hue="library",
        sharey=False,
        height=2.8,
        aspect=1.1,
    )
    grid.set_axis_labels("", "gap to entropy (or NLL), nats")
    grid.set_titles("{col_name}")
    for ax in grid.axes.flat:
        ax.tick_params(axis="x", rotation=60)
    path = _save(grid.figure, figures, "bench_quality.png")
    lines += [
        f"![held-out gap to the entropy per dataset and model]({path})",
        "",
        "*Gap to the entropy (datasets without a known density: NLL) per model; dot: "
        "mean over seeds, bar: min to max.*",
        "",
    ]
    return lines


# ----------------------------------------------------------------------------
# ablation

_WHY = {
    "zero-initialized last layer": (
        "A zero last layer makes every new layer exactly the identity, a popular start. The "
        "hidden layers then get no gradient at the first step (everything they compute is "
        "multiplied by the zero weights) and stay slow while the last layer grows. Compare "
        "its row with the reading's row and the last row: with the network read the paper's "
        "way the identity start changes little, but with the generative reading it stalls "
        "training, which is what cost the library before this comparison most. PyTorch's "
        "default initialization, the last layer included (a small random map near the "
        "identity), trains well with either reading."
    ),
    "network read as t, s of x = z exp(s) + t": (
        "Maximum likelihood trains the normalizing direction. Read as the generative "
        "``x = z exp(s) + t``, the network's shift acts there as ``z = (x - t) exp(-s)``: "
        "divided by a scale that the same step changes, and its gradient with it. nfcourse "
        "reads the output as the normalizing map itself, ``z = x exp(r) + q`` (the RealNVP "
        "paper's form, data to noise; zuko's too), where the shift enters as it is. The "
        "family of maps and the log-det formula are the same; it also saves two operations "
        "per layer."
    ),
    "log-scale bound 3": (
        "A soft clamp ``s = B tanh(raw / B)`` stops one layer from exploding, which is what "
        "turns training into NaNs. B = 2 lets one layer scale by up to 7.4 (five layers: "
        "e^10); B = 3 allows 20 per layer. The table shows what the tighter bound is worth "
        "at this budget; it never limits what a stack can express."
    ),
}


def _ablation(rows: list[dict], cfg: dict) -> list[str]:
    df = pd.DataFrame(rows)
    q = cfg["quality"]
    lines = [
        "nfcourse's RealNVP and MAF with one of their defaults reverted at a time (and all "
        "three at once: the library as it was before this comparison), trained exactly as in "
        f"the quality section ({q['steps']} steps, lr {q['lr']:g}, seeds {tuple(q['seeds'])}, "
        "the same data and the same initial weights). Mean gap to the entropy over seeds, "
        "nats; the last column is the mean change from the defaults (positive: worse).",
        "",
    ]
    dsets = list(dict.fromkeys(df["dataset"]))
    variants = list(dict.fromkeys(df["variant"]))
    table = []
    for name in dict.fromkeys(df["model"]):
        base = df[(df.model == name) & (df.variant == "defaults")]
        for variant in variants:
            sub = df[(df.model == name) & (df.variant == variant)]
            cells = [_f(sub[sub.dataset == d]["gap"].astype(float).mean()) for d in dsets]
            merged = sub.merge(base, on=["dataset", "seed"], suffixes=("", "_base"))
            change = (merged["gap"].astype(float) - merged["gap_base"].astype(float)).mean()
            diverged = int(sub["diverged_at"].notna().sum())
            note = f" ({diverged} diverged)" if diverged else ""
            shown = "—" if variant == "defaults" else f"{change:+.3f}{note}"
            table.append([name, variant, *cells, shown])
    lines += _table(
        ["model", "reverted", *[f"{d} gap" for d in dsets], "change"],
        table,
        "ll" + "r" * (len(dsets) + 1),
    )
    lines += ["What each default does:", ""]
    for variant, why in _WHY.items():
        if variant in variants:
            lines += [f"- **{variant}**: {why}", ""]
    return lines


# ----------------------------------------------------------------------------
# beyond two dimensions


def _paired(df: pd.DataFrame, label: str, reference: str) -> pd.Series:
    """``gap(label) - gap(reference)`` by seed (same data, same minibatches)."""
    ref = df[df.label == reference].set_index("seed")["gap"].astype(float)
    return (df[df.label == label].set_index("seed")["gap"].astype(float) - ref).dropna()


def _tabular_targets(rows: list[dict]) -> list[list[str]]:
    df = pd.DataFrame(rows)
    out = []
    for dim in sorted(set(df["dim"])):
        sub = df[df.dim == dim]
        for lab, reference in PAIRS:
            diff = _paired(sub, lab, reference)
            if diff.empty:
                continue
            se = diff.std() / math.sqrt(len(diff)) if len(diff) > 1 else math.nan
            ours = sub[sub.label == lab]["gap"].astype(float).mean()
            ref = sub[sub.label == reference]["gap"].astype(float).mean()
            miss = f"by {diff.mean():.3f} nats"
            if not math.isnan(se) and diff.mean() <= 2 * se:
                miss += ", within seed noise"
            noise = f"; paired {diff.mean():+.3f} +- {se:.3f}" if len(diff) > 1 else ""
            out.append(
                [
                    f"{lab} gap on the D = {dim} mixture <= {reference}'s",
                    f"{ours:.3f} vs {ref:.3f}{noise}; no worse on {int((diff <= 0).sum())} of "
                    f"{len(diff)} seeds",
                    _verdict(diff.mean() <= 0, miss),
                ]
            )
    return out


def _tabular(rows: list[dict], cfg: dict) -> list[str]:
    df = pd.DataFrame(rows)
    dims = sorted(set(df["dim"]))
    entropy = df.groupby("dim")[["entropy", "entropy_se"]].first()
    lines = [
        f"Fixed random mixtures of {cfg['components']} correlated Gaussians in D = "
        + ", ".join(map(str, dims))
        + " (`nfcourse.data.mixtures.Mixture(D, seed="
        + f"{cfg['mixture_seed']})`), trained by the quality section's loop and budget "
        f"({cfg['steps']} steps, batch {cfg['batch_size']}, lr {cfg['lr']:g}, "
        f"{cfg['layers']} layers, hidden {tuple(cfg['hidden'])}; {cfg['n_train']:,} training "
        f"and {cfg['n_test']:,} test points per seed, seeds {tuple(cfg['seeds'])}). The "
        "log-density is exact; the entropy has no closed form and is the mean of -log p over "
        f"{cfg['entropy_samples']:,} points: "
        + ", ".join(
            f"D = {d}: {entropy.loc[d, 'entropy']:.4f} +- {entropy.loc[d, 'entropy_se']:.4f}"
            for d in dims
        )
        + " nats (standard error). That error shifts every model's gap alike, so it "
        "cancels from the paired differences.",
        "",
        "Gap to the entropy (nats), mean +- standard error over seeds:",
        "",
    ]
    labels = list(dict.fromkeys(df["label"]))

    def cell(values: pd.Series) -> str:
        values = values.astype(float).dropna()
        if values.empty:
            return "—"
        if len(values) == 1:
            return _f(values.mean())
        return f"{values.mean():.3f} +- {values.std() / math.sqrt(len(values)):.3f}"

    table = []
    for lab in labels:
        sub = df[df.label == lab]
        params = "/".join(
            str(int(sub[sub.dim == d]["params"].iloc[0])) for d in dims if (sub.dim == d).any()
        )
        ms = _f(sub["ms_per_step"].median(), 1)
        table.append([lab, *[cell(sub[sub.dim == d]["gap"]) for d in dims], params, ms])
    lines += _table(["model", *[f"D = {d}" for d in dims], "parameters", "ms/step (median)"], table)
    lines += [
        "Paired by seed: the mean difference of gaps from the zuko flow each nfcourse flow is "
        "held to (the targets' pairs) +- its standard error, and on how many seeds nfcourse's "
        "is no worse:",
        "",
    ]
    table = []
    for lab, reference in PAIRS:
        cells = []
        for d in dims:
            diff = _paired(df[df.dim == d], lab, reference)
            if diff.empty:
                cells.append("—")
                continue
            se = diff.std() / math.sqrt(len(diff)) if len(diff) > 1 else math.nan
            noise = f" +- {se:.3f}" if len(diff) > 1 else ""
            cells.append(f"{diff.mean():+.3f}{noise} ({int((diff <= 0).sum())}/{len(diff)})")
        if any(c != "—" for c in cells):
            table.append([f"{lab} - {reference}", *cells])
    if table:
        lines += _table(["difference", *[f"D = {d}" for d in dims]], table)
    diverged = df[df["diverged_at"].notna()]
    if len(diverged):
        lines += [f"{len(diverged)} runs diverged (NaN loss); their gaps are left out.", ""]
    return lines


# ----------------------------------------------------------------------------
# speed


def _speed(rows: list[dict], cfg: dict, figures: Path) -> list[str]:
    libs = list(dict.fromkeys(r["library"] for r in rows))
    others = [lib for lib in libs if lib != "nfcourse"]
    lines = [
        f"Batch {cfg['batch']}, {cfg['layers']} layers, hidden {tuple(cfg['hidden'])}, the same "
        "parameter count in every library (column params). Milliseconds per call: median "
        f"(min–max) over {cfg['repeats']} timed repeats, each at least "
        f"{cfg['min_time'] * 1e3:.0f} ms of calls; libraries timed in turns. Ratio below 1: "
        "nfcourse is faster.",
        "",
    ]
    ratio = {lib: speed.ratios(rows, lib) for lib in others}
    key = ("threads", "dim", "kind", "op")
    cells: dict[tuple, dict] = {}
    for r in rows:
        cells.setdefault(tuple(r[k] for k in key), {})[r["library"]] = r
    header = ["threads", "D", "flow", "operation", "params", *[f"{lib} (ms)" for lib in libs]]
    header += [f"nfcourse / {lib}" for lib in others]
    table = []
    for cell, by_lib in cells.items():
        threads, dim, kind, op = cell
        first = next(iter(by_lib.values()))
        line = [str(threads), str(dim), f"{first['model']} ({kind})", op, f"{first['params']:,}"]
        for lib in libs:
            r = by_lib.get(lib)
            line.append(f"{r['median_ms']:.2f} ({r['min_ms']:.2f}–{r['max_ms']:.2f})" if r else "—")
        for lib in others:
            match = [x["ratio"] for x in ratio[lib] if tuple(x[k] for k in key) == cell]
            line.append(f"{match[0]:.2f}" if match else "—")
        table.append(line)
    lines += _table(header, table, "rrll" + "r" * (len(header) - 4))
    df = pd.DataFrame(rows)
    df["threads"] = df["threads"].astype(str)
    grid = sns.relplot(
        data=df,
        x="dim",
        y="median_ms",
        hue="library",
        style="threads",
        row="model",
        col="op",
        kind="line",
        markers=True,
        height=2.6,
        aspect=1.2,
        facet_kws={"sharey": False},
    )
    grid.set(xscale="log", yscale="log")
    for ax in grid.axes.flat:
        ax.set_xticks(list(cfg["dims"]), [str(d) for d in cfg["dims"]])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    grid.set_axis_labels("D", "ms per call (median)")
    grid.set_titles("{row_name}: {col_name}")
    path = _save(grid.figure, figures, "bench_speed.png")
    lines += [f"![time per call against D]({path})", ""]
    return lines


# ----------------------------------------------------------------------------
# variational inference


def _vi(rows: list[dict], curves: list[dict], cfg: dict, figures: Path) -> list[str]:
    """Planar depths on U1 (rows without ``part``), then the lesson-08 flows on U1-U4."""
    energy_rows = [r for r in rows if r.get("part") == "energies"]
    planar = [r for r in rows if "part" not in r]
    lines = _vi_planar(planar, curves, cfg, figures) if planar else []
    return lines + (_vi_energies(energy_rows, cfg) if energy_rows else [])


def _vi_kl(rows: list[dict], flow: str, energy: str, steps: int, anneal: int) -> list[float]:
    return [
        r["kl"]
        for r in rows
        if (r["flow"], r["energy"], r["steps"], r["anneal_steps"]) == (flow, energy, steps, anneal)
    ]


def _vi_energies(rows: list[dict], cfg: dict) -> list[str]:
    """The flows of lesson 08 on every energy: KL annealed and not, and the longer runs."""
    steps, anneal = cfg["flow_steps"], cfg["flow_anneal_steps"]
    long_steps, long_anneal = cfg["long_steps"], cfg["long_anneal_steps"]
    lines = [
        "### The flows of lesson 08 on U1-U4",
        "",
        f"`benchmarks.vi.FLOWS` (the lesson's builders) fitted with `nfcourse.fit_reverse_kl`: "
        f"{steps} steps of {cfg['n_samples']} samples, lr {cfg['flow_lr']:g} with cosine decay, "
        f"annealed over the first {anneal} steps and, for comparison, not annealed; "
        f"{', '.join(cfg['long_flows'])} also with {long_steps} steps (lr {cfg['long_lr']:g}, "
        f"annealed over {long_anneal}). Seeds {tuple(cfg['flow_seeds'])}. KL(q || p) with the "
        f"known log Z from {cfg['n_final']} samples (SE about "
        f"{_f(statistics.median([r['se'] for r in rows]), 3)} nats): median (min–max) over "
        "seeds. Time: training only, one thread.",
        "",
    ]
    table = []
    for energy in dict.fromkeys(r["energy"] for r in rows):
        for flow in dict.fromkeys(r["flow"] for r in rows if r["steps"] == steps):
            sub = [r for r in rows if (r["flow"], r["energy"], r["steps"]) == (flow, energy, steps)]
            if not sub:
                continue
            table.append([
                energy,
                flow,
                str(sub[0]["params"]),
                _spread(_vi_kl(rows, flow, energy, steps, anneal), 3),
                _spread(_vi_kl(rows, flow, energy, steps, 0), 3),
                _spread([r["seconds"] for r in sub], 1),
            ])
        for flow in cfg["long_flows"]:
            sub = [r for r in rows if (r["flow"], r["energy"], r["steps"]) == (flow, energy,
                                                                                 long_steps)]
            if sub:
                table.append([
                    energy,
                    f"{flow}, {long_steps} steps",
                    str(sub[0]["params"]),
                    _spread(_vi_kl(rows, flow, energy, long_steps, long_anneal), 3),
                    "—",
                    _spread([r["seconds"] for r in sub], 1),
                ])
    lines += _table(
        ["target", "flow", "params", "KL annealed", "KL not annealed", "train time (s)"], table,
        "llrrrr",
    )
    return lines


def _vi_energy_targets(rows: list[dict], cfg: dict) -> list[list[str]]:
    """Per energy: the best lesson-08 flow reaches KL <= target at the lesson's budget or longer."""
    out = []
    steps, anneal = cfg["flow_steps"], cfg["flow_anneal_steps"]
    for energy in dict.fromkeys(r["energy"] for r in rows):
        short = {
            f: statistics.mean(v)
            for f in dict.fromkeys(r["flow"] for r in rows)
            if (v := _vi_kl(rows, f, energy, steps, anneal))
        }
        long = {
            f: statistics.mean(v)
            for f in cfg["long_flows"]
            if (v := _vi_kl(rows, f, energy, cfg["long_steps"], cfg["long_anneal_steps"]))
        }
        if not short:
            continue
        best = min(short, key=short.get)
        measured = f"{best} {short[best]:.3f} at {steps} steps"
        if long:
            best_long = min(long, key=long.get)
            measured += f"; {best_long} {long[best_long]:.3f} at {cfg['long_steps']} steps"
        ok_short = short[best] <= cfg["target_kl"]
        ok_long = bool(long) and min(long.values()) <= cfg["target_kl"]
        out.append([
            f"best lesson-08 flow on {energy}: KL <= {cfg['target_kl']:g} (mean over seeds)",
            measured,
            "yes" if ok_short else "yes, with the longer run" if ok_long else _verdict(False),
        ])
    return out


def _vi_planar(rows: list[dict], curves: list[dict], cfg: dict, figures: Path) -> list[str]:
    lines = [
        f"Target {cfg['energy']} (log Z known, so the KL is exact up to Monte Carlo error). "
        f"{cfg['steps']} Adam steps of {cfg['n_samples']} samples, lr {cfg['lr']:g} with cosine "
        f"decay, annealing over the first {cfg['anneal_steps']} steps; seeds "
        f"{tuple(cfg['seeds'])}. KL(q || p) from {cfg['n_final']} samples at the end "
        f"(SE about {_f(statistics.median([r['se'] for r in rows]), 3)} nats). "
        f"Time to reach: training time until a checkpoint (every {cfg['eval_every']} steps, "
        f"{cfg['n_eval']} samples) first measured KL <= {cfg['target_kl']} after annealing. "
        f"Mode collapse: fewer than {cfg['collapse']:.0%} of the samples on one side of "
        "z1 = 0 (the target has half on each).",
        "",
    ]
    table = []
    for k in dict.fromkeys(r["K"] for r in rows):
        sub = [r for r in rows if r["K"] == k]
        reached = [r["reached_s"] for r in sub if r["reached_s"] is not None]
        collapsed = sum(r["collapsed"] for r in sub)
        diverged = sum(r["diverged_at"] is not None for r in sub)
        table.append(
            [
                sub[0]["model"],
                str(sub[0]["params"]),
                _spread([r["kl"] for r in sub], 3),
                _spread([r["seconds"] for r in sub], 1),
                f"{_spread(reached, 1)} ({len(reached)}/{len(sub)})",
                f"{collapsed}/{len(sub)}" + (f", {diverged} diverged" if diverged else ""),
            ]
        )
    lines += _table(
        ["flow", "params", "KL (nats)", "train time (s)", "time to target (s)", "collapsed"],
        table,
    )
    lines += ["Per run:", ""]
    lines += _table(
        ["flow", "seed", "KL ± SE", "z1 > 0", "time (s)", "time to target (s)"],
        [
            [
                r["model"],
                str(r["seed"]),
                f"{_f(r['kl'])} ± {_f(r['se'])}",
                _f(r["right"], 2) + (" collapsed" if r["collapsed"] else ""),
                _f(r["seconds"], 1),
                _f(r["reached_s"], 1) if r["reached_s"] is not None else "not reached",
            ]
            for r in rows
        ],
    )
    if curves:
        df = pd.DataFrame(curves)
        df["K"] = df["K"].astype(str)
        fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
        sns.lineplot(data=df, x="seconds", y="kl", hue="K", units="seed", estimator=None, ax=ax)
        ax.axhline(cfg["target_kl"], color="grey", linestyle=":", label="target")
        ax.set(yscale="log", xlabel="training time (s)", ylabel="KL(q || p), nats")
        path = _save(fig, figures, "bench_vi.png")
        lines += [
            f"![KL against training time]({path})",
            "",
            "*KL at each checkpoint against training time, one line per seed; dotted: the target.*",
            "",
        ]
    return lines


# ----------------------------------------------------------------------------
# lesson run times


def _lessons(rows: list[dict], cfg: dict) -> list[str]:
    lines = [
        f"Each notebook of `{cfg['folder']}/` run top to bottom {cfg['runs']} times in a fresh "
        "kernel (kernel start included), by `benchmarks/lesson_times.py`. Budget: "
        f"{cfg['budget_s']} s per lesson.",
        "",
    ]
    table, total = [], 0.0
    for r in rows:
        t = r["seconds"]
        total += statistics.median(t)
        ok = "yes" if max(t) <= cfg["budget_s"] else "NO"
        table.append([r["lesson"], _f(statistics.median(t), 1), _f(min(t), 1), _f(max(t), 1), ok])
    lines += _table(["lesson", "median (s)", "min (s)", "max (s)", "within budget"], table, "lrrrl")
    lines += [f"Whole course (sum of medians): {total:.0f} s.", ""]
    return lines


# ----------------------------------------------------------------------------


def render(results: dict, figures: Path) -> str:
    """The Markdown page for ``results``; figures are written into ``figures``."""
    meta = results["meta"]
    lines = _header(meta)
    lines += ["## The targets at a glance", "", *_targets(results)]
    for key, title in SECTIONS.items():
        lines += [f"## {title}", ""]
        if key not in results:
            lines += ["Not run in this run (see `--sections`).", ""]
            continue
        section = results[key]
        if key == "quality":
            used = meta["libraries"]["used"]
            lines += _quality(section["rows"], section["config"], used, figures)
        elif key == "ablation":
            lines += _ablation(section["rows"], section["config"])
        elif key == "tabular":
            lines += _tabular(section["rows"], section["config"])
        elif key == "speed":
            lines += _speed(section["rows"], section["config"], figures)
        elif key == "vi":
            lines += _vi(section["rows"], section["curves"], section["config"], figures)
        else:
            lines += _lessons(section["rows"], section["config"])
    return "\n".join(lines).rstrip() + "\n"


def write(results: dict, output: Path) -> Path:
    """Write the page to ``output`` and its figures to ``output.parent / "figures"``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(results, output.parent / "figures"))
    return output
