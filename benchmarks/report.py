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

from . import common, models, speed  # noqa: E402
from . import continuous as continuous_bench  # noqa: E402
from . import digits as digits_bench  # noqa: E402

SECTIONS = {
    "quality": "Quality at equal budget",
    "ablation": "What made the difference",
    "tabular": "Beyond two dimensions: Gaussian mixtures",
    "digits": digits_bench.TITLE,
    "speed": "Speed",
    "vi": "Variational inference: the energies U1-U4",
    "continuous": continuous_bench.TITLE,
    "lessons": "Lesson run times",
}


# ----------------------------------------------------------------------------
# small formatting helpers


_f = common.fmt
_table = common.table


def _spread(values: list[float], digits: int = 2) -> str:
    """``median (min–max)``."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "—"
    med = statistics.median(values)
    if len(values) == 1:
        return _f(med, digits)
    return f"{_f(med, digits)} ({_f(min(values), digits)}–{_f(max(values), digits)})"


def _save(fig, folder: Path, name: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / name, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f"figures/{name}"


# ----------------------------------------------------------------------------
# the header


def _header(results: dict) -> list[str]:
    meta = results["meta"]
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
    seeds = "; ".join(f"{k} {v}" for k, v in meta["seeds"].items())
    lines += [
        f"- Torch threads: {meta['threads']} for training (speed: as in each row)."
        + (
            f" Seeds: {seeds} (each seed fixes the data, the initial weights and the minibatches)."
            if seeds
            else ""
        ),
        "",
        "Benchmarks are not tests: timings depend on the machine and on what else runs. "
        "A smoke test runs this suite at a tiny budget; CI times nothing.",
        "",
    ]
    return lines + _provenance(results)


def _made(meta: dict) -> str:
    """How and when a results file was made: its command(s), date, duration, machine, load
    and notes, as far as its ``meta`` says."""
    runs = meta["command"] if isinstance(meta["command"], list) else [meta["command"]]
    text = " then ".join(f"`{c}`" for c in runs) + f" on {meta['date']}"
    seconds = meta.get("total_s", meta.get("seconds"))
    if seconds is not None:
        text += f", in {seconds / 60:.1f} min"
    details = []
    machine = meta.get("machine")
    if isinstance(machine, dict):
        details.append(f"{machine['cpu']}, {machine['cores']} cores")
        details.append(
            f"load {machine['load_start']} at the start, {machine.get('load_end', '?')} at the end"
        )
    elif machine:
        details.append(machine)
    if "torch" in meta and "torch" not in str(machine):
        details.append(f"torch {meta['torch']}")
    if "threads" in meta:
        details.append(f"{meta['threads']} torch thread{'s' if meta['threads'] != 1 else ''}")
    if meta.get("load"):
        details.append(f"load {meta['load']}")
    suite = "section_s" in meta  # a run of `python -m benchmarks`: its budget is a name
    for key in ("clock", "shared", "budget", "note"):
        if meta.get(key) and not (suite and key == "budget"):
            details.append(f"{key}: {meta[key]}" if key in ("clock", "shared") else meta[key])
    if meta.get("partial"):
        details.append(f"**partial**: {meta.get('why_partial', 'a reduced budget')}")
    if meta.get("complete") is False:
        details.append("**the run did not finish**: rows that it had not reached are absent")
    return text + ("; " + "; ".join(details) if details else "") + "."


def _provenance(results: dict) -> list[str]:
    """Where each section comes from, when some come from other runs than the header's
    (merged results files: :func:`merge`)."""
    vi_energies = results.get("vi", {}).get("energies_meta")
    own = {k: results[k]["meta"] for k in SECTIONS if results.get(k, {}).get("meta")}
    if not own and not vi_energies:
        return []
    title = dict(SECTIONS)
    if vi_energies:
        title["vi"] = "Variational inference (the planar flows on U1)"
    ran = [title[k] for k in SECTIONS if k in results and k not in own]
    if vi_energies and not any(r.get("part") != "energies" for r in results["vi"]["rows"]):
        ran = [t for t in ran if t != title["vi"]]  # no planar rows: nothing of the header's
    lines = ["Where each section's numbers come from (the results files were merged):", ""]
    if ran:
        lines.append("- " + "; ".join(ran) + ": the run(s) above.")
    for key, meta in own.items():
        lines.append(f"- {title[key]}: {_made(meta)}")
    if vi_energies:
        lines.append(f"- Variational inference (the flows of lesson 08): {_made(vi_energies)}")
    return lines + [""]


def _section_meta(results: dict, key: str) -> dict:
    """The ``meta`` of one section, for the sections whose own module writes the text
    (date, machine, load, command): its own, or the header's run's."""
    if results[key].get("meta"):
        return results[key]["meta"]
    meta, machine = results["meta"], results["meta"]["machine"]
    command = (
        meta["command"] if isinstance(meta["command"], str) else " then ".join(meta["command"])
    )
    return {
        "date": meta["date"],
        "machine": f"{machine['cpu']}, {machine['cores']} cores",
        "load": f"{machine['load_start']} at the start, {machine['load_end']} at the end",
        "command": command,
    }


# ----------------------------------------------------------------------------
# the targets at a glance

# (nfcourse's flow, the flow whose gap it must match or beat)
PAIRS = (
    ("nfcourse MAF", "zuko MAF"),
    ("nfcourse RealNVP", "zuko MAF"),
    ("nfcourse NSF", "zuko NSF"),
)
# nfcourse's RealNVP with twice the couplings (benchmarks.models.PAIRED_REALNVP)
PAIRED_REALNVP = f"nfcourse {models.PAIRED_REALNVP}"
STEP_OP = "train step"
VI_K, VI_SECONDS = 32, 30.0  # planar K = 32 must reach the target KL within 30 s


def _verdict(ok: bool, miss: str = "") -> str:
    return "yes" if ok else f"**no**{f' ({miss})' if miss else ''}"


def _paired_targets(rows: list[dict], group: str, where: str) -> list[list[str]]:
    """Per value of ``group`` (a data set, a dimension) and pair of :data:`PAIRS`: the mean
    gaps and their difference paired by seed (same data, same minibatches) with its standard
    error; ``where`` names the group in the target (``"on {}"``)."""
    rows = [r for r in rows if r.get("gap") is not None and r["gap"] == r["gap"]]
    diffs = {pair: common.paired(rows, *pair, group=group) for pair in PAIRS}
    out = []
    for g in dict.fromkeys(r[group] for r in rows):
        for lab, reference in PAIRS:
            if g not in diffs[lab, reference]:
                continue
            mean, se, wins, n = diffs[lab, reference][g]
            ours, ref = (
                common.mean_se(r["gap"] for r in rows if r[group] == g and r["label"] == x)[0]
                for x in (lab, reference)
            )
            miss = f"by {mean:.3f} nats" + (", within seed noise" if mean <= 2 * se else "")
            noise = (
                f"; paired by seed {mean:+.3f} +- {se:.3f} (standard error), no worse on "
                f"{wins} of {n} seeds"
                if n > 1
                else ""
            )
            out.append(
                [
                    f"{lab} gap {where.format(g)} <= {reference}'s",
                    f"{ours:.3f} vs {ref:.3f}{noise}",
                    _verdict(mean <= 0, miss),
                ]
            )
    return out


def _targets(results: dict) -> list[str]:
    """One row per target of the suite, with the measured figure and whether it is met."""
    rows = []
    if "quality" in results:
        rows += _paired_targets(results["quality"]["rows"], "dataset", "on {}")
    if "tabular" in results:
        rows += _paired_targets(results["tabular"]["rows"], "dim", "on the D = {} mixture")
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
            rows.append(
                [
                    f"train step no slower than {lib} (ratio <= 1.0)",
                    f"{int((ratio <= 1.0).sum())} of {len(ratio)} cells; ratio "
                    f"{ratio.min():.2f} to {ratio.max():.2f} (worst: {worst[2]}, D = {worst[1]}, "
                    f"{worst[0]} thread{'s' if worst[0] > 1 else ''})",
                    _verdict(
                        bool((ratio <= 1.0).all()), f"worst by {100 * (ratio.max() - 1):.0f}%"
                    ),
                ]
            )
    if "vi" in results:
        cfg = results["vi"]["config"]
        runs = [r for r in results["vi"]["rows"] if r.get("K") == VI_K]
        if runs:
            reached = [r["reached_s"] for r in runs if r["reached_s"] is not None]
            fast = [t for t in reached if t <= VI_SECONDS]
            kl = statistics.median(r["kl"] for r in runs)
            when = f", median {statistics.median(reached):.1f} s" if reached else ""
            rows.append(
                [
                    f"planar K = {VI_K} on U1: KL <= {cfg['target_kl']:g} within {VI_SECONDS:g} s",
                    f"{len(fast)} of {len(runs)} seeds{when}; final KL median {kl:.3f}",
                    _verdict(len(fast) == len(runs), f"{len(runs) - len(fast)} seeds missed"),
                ]
            )
        energy_rows = [r for r in results["vi"]["rows"] if r.get("part") == "energies"]
        if energy_rows:
            rows += _vi_energy_targets(energy_rows, results["vi"].get("energies_config", cfg))
    if "digits" in results:
        for t in digits_bench.targets(results["digits"]):
            met = "no target" if t["met"] is None else _verdict(t["met"])
            rows.append([f"image flow on the digits: {t['target']}", t["measured"], met])
    if "continuous" in results:
        section = {**results["continuous"], "meta": _section_meta(results, "continuous")}
        for budget, by_name in continuous_bench.verdicts_by_budget(section).items():
            for name, v in by_name.items():
                rows.append(
                    [
                        f"best flow matching on {name} no worse than the best discrete flow "
                        f"at {budget:g} s of CPU time (at most two standard errors above)",
                        f"{v['fm_model']} {v['fm']:.3f} vs {v['best']} {v['discrete']:.3f}; "
                        f"difference {v['difference']:+.3f} +- {v['se']:.3f} (standard error "
                        "over seeds)",
                        _verdict(v["met"], f"by {v['difference']:.3f} nats"),
                    ]
                )
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
    labels = list(dict.fromkeys(df["label"]))
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
        means[d] = {lab: sub[sub.label == lab][col].astype(float).mean() for lab in labels}
    table = []
    for lab in labels:
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
        for lab in labels:
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
        mean, se = common.mean_se(values)
        return _f(mean) if math.isnan(se) else f"{mean:.3f} +- {se:.3f}"

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
    for lab, reference in (*PAIRS, (PAIRED_REALNVP, "zuko MAF")):
        cells = []
        diffs = common.paired(rows, lab, reference, group="dim")
        for d in dims:
            if d not in diffs:
                cells.append("—")
                continue
            mean, se, wins, n = diffs[d]
            noise = f" +- {se:.3f}" if n > 1 else ""
            cells.append(f"{mean:+.3f}{noise} ({wins}/{n})")
        if any(c != "—" for c in cells):
            table.append([f"{lab} - {reference}", *cells])
    if table:
        lines += _table(["difference", *[f"D = {d}" for d in dims]], table)
    if PAIRED_REALNVP in labels:
        lines += [
            f"{PAIRED_REALNVP} is not a target but the control of why RealNVP trails beyond "
            "two dimensions: a coupling moves half of the coordinates and a MAF layer all of "
            f"them, so {cfg['layers']} couplings move each coordinate "
            f"{cfg['layers'] // 2}-{(cfg['layers'] + 1) // 2} times against the MAF's "
            f"{cfg['layers']}. The control has twice the couplings ({2 * cfg['layers']}) with "
            "hidden widths cut to 3/4 "
            f"({models.paired_hidden(cfg['hidden'])}), which keeps its parameter "
            "count near the MAF's. `nf.realnvp(dim, layers)` keeps counting couplings, as "
            "lessons 04-06 and the RealNVP paper do; a learner who wants a coupling flow on "
            "tabular data asks for about twice as many layers as for a MAF.",
            "",
        ]
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


def _vi(
    rows: list[dict], curves: list[dict], cfg: dict, energies: dict, figures: Path
) -> list[str]:
    """Planar depths on U1 (rows without ``part``; config ``cfg``), then the lesson-08 flows
    on U1-U4 (config ``energies``: the same, or another file's when merged)."""
    energy_rows = [r for r in rows if r.get("part") == "energies"]
    planar = [r for r in rows if "part" not in r]
    lines = _vi_planar(planar, curves, cfg, figures) if planar else []
    return lines + (_vi_energies(energy_rows, energies) if energy_rows else [])


def _vi_kl(rows: list[dict], flow: str, energy: str, steps: int, anneal: int) -> list[float]:
    return [
        r["kl"]
        for r in rows
        if (r["flow"], r["energy"], r["steps"], r["anneal_steps"]) == (flow, energy, steps, anneal)
    ]


def _vi_long_flows(rows: list[dict], cfg: dict) -> list[str]:
    """The flows with rows of the longer budget (as the rows name them)."""
    return list(dict.fromkeys(r["flow"] for r in rows if r["steps"] == cfg["long_steps"]))


def _vi_energies(rows: list[dict], cfg: dict) -> list[str]:
    """The flows of lesson 08 on every energy: KL annealed and not, and the longer runs."""
    steps, anneal = cfg["flow_steps"], cfg["flow_anneal_steps"]
    long_steps, long_anneal = cfg["long_steps"], cfg["long_anneal_steps"]
    # settings of the longer runs that newer configs have (older files: as the lesson's)
    long_samples = f" of {cfg['long_samples']} samples" if cfg.get("long_samples") else ""
    seeds = cfg.get("long_seeds")
    long_seeds = f" ({tuple(seeds)} for the longer runs)" if seeds else ""
    lines = [
        "### The flows of lesson 08 on U1-U4",
        "",
        f"`benchmarks.vi.FLOWS` (the lesson's builders) fitted with `nfcourse.fit_reverse_kl`: "
        f"{steps} steps of {cfg['n_samples']} samples, lr {cfg['flow_lr']:g} with cosine decay, "
        f"annealed over the first {anneal} steps and, for comparison, not annealed; "
        f"{', '.join(_vi_long_flows(rows, cfg))} also with {long_steps} steps{long_samples} (lr "
        f"{cfg['long_lr']:g}, annealed over {long_anneal}). Seeds {tuple(cfg['flow_seeds'])}"
        f"{long_seeds}. KL(q || p) with the "
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
            table.append(
                [
                    energy,
                    flow,
                    str(sub[0]["params"]),
                    _spread(_vi_kl(rows, flow, energy, steps, anneal), 3),
                    _spread(_vi_kl(rows, flow, energy, steps, 0), 3),
                    _spread([r["seconds"] for r in sub], 1),
                ]
            )
        for flow in _vi_long_flows(rows, cfg):
            sub = [
                r
                for r in rows
                if (r["flow"], r["energy"], r["steps"]) == (flow, energy, long_steps)
            ]
            if sub:
                table.append(
                    [
                        energy,
                        f"{flow}, {long_steps} steps",
                        str(sub[0]["params"]),
                        _spread(_vi_kl(rows, flow, energy, long_steps, long_anneal), 3),
                        "—",
                        _spread([r["seconds"] for r in sub], 1),
                    ]
                )
    lines += _table(
        ["target", "flow", "params", "KL annealed", "KL not annealed", "train time (s)"],
        table,
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
            for f in _vi_long_flows(rows, cfg)
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
        out.append(
            [
                f"best lesson-08 flow on {energy}: KL <= {cfg['target_kl']:g} (mean over seeds)",
                measured,
                "yes" if ok_short else "yes, with the longer run" if ok_long else _verdict(False),
            ]
        )
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


def _digits(section: dict) -> list[str]:
    """Lesson 07's image flow against baselines and tabular flows (:mod:`benchmarks.digits`)."""
    body = [digits_bench.describe(section["config"]), "", *digits_bench.table(section)]
    return body + ["Targets:", "", *digits_bench.verdicts(section), ""]


def _continuous(section: dict) -> list[str]:
    """Flow matching against discrete flows: :func:`benchmarks.continuous.markdown`'s text
    without its heading, naming the command that made it."""
    lines = continuous_bench.markdown(section)
    if lines and lines[0].startswith("## "):
        lines = lines[2:]
    command = section["meta"].get("command", "")
    if command and not command.startswith("python -m benchmarks.continuous"):
        lines = [x.replace("`python -m benchmarks.continuous`", f"`{command}`") for x in lines]
    return lines


def render(results: dict, figures: Path) -> str:
    """The Markdown page for ``results``; figures are written into ``figures``."""
    meta = results["meta"]
    lines = _header(results)
    lines += ["## The targets at a glance", "", *_targets(results)]
    for key, title in SECTIONS.items():
        lines += [f"## {title}", ""]
        if key not in results:
            lines += [
                f"Not in these results: run it (`python -m benchmarks --sections {key}`) or "
                "add its results file to `--render`.",
                "",
            ]
            continue
        section = results[key]
        own = section.get("meta") or {}
        if own.get("partial") and not meta.get("partial"):
            lines += [
                f"> **Partial section**: {own.get('why_partial', 'a reduced budget')}; made by "
                "a run of its own (see the header).",
                "",
            ]
        if key == "quality":
            used = meta["libraries"]["used"]
            lines += _quality(section["rows"], section["config"], used, figures)
        elif key == "ablation":
            lines += _ablation(section["rows"], section["config"])
        elif key == "tabular":
            lines += _tabular(section["rows"], section["config"])
        elif key == "digits":
            lines += _digits(section)
        elif key == "speed":
            lines += _speed(section["rows"], section["config"], figures)
        elif key == "vi":
            cfg = section["config"]
            energies = section.get("energies_config", cfg)
            lines += _vi(section["rows"], section["curves"], cfg, energies, figures)
        elif key == "continuous":
            lines += _continuous({**section, "meta": _section_meta(results, key)})
        else:
            lines += _lessons(section["rows"], section["config"])
    return "\n".join(lines).rstrip() + "\n"


def write(results: dict, output: Path) -> Path:
    """Write the page to ``output`` and its figures to ``output.parent / "figures"``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(results, output.parent / "figures"))
    return output


# ----------------------------------------------------------------------------
# merging results files


def _file_kind(data: dict) -> str | None:
    """The section of a one-section results file (``config`` and ``rows`` at the top):
    ``python -m benchmarks.digits`` or ``python -m benchmarks.continuous``."""
    config = data.get("config", {})
    if "image_depth" in config:
        return "digits"
    if "field_hidden" in config:
        return "continuous"
    return None


def normalize(data: dict, name: str = "results") -> dict:
    """One results file as ``{"meta": the run's meta or None, section: {...}}``.

    Three kinds: the suite's (``python -m benchmarks --json``: ``meta`` with
    ``section_s``, one entry per section); a section script's with the section under its
    key (``python -m benchmarks.vi``: ``{"meta", "vi"}``); a section script's with
    ``config`` and ``rows`` at the top (``benchmarks.digits``, ``benchmarks.continuous``).
    The last two have no header of their own: each of their sections keeps their ``meta``.
    """
    meta = data.get("meta")
    if meta is None:
        raise ValueError(f"{name}: not a benchmark results file (no 'meta')")
    kind = _file_kind(data) if "rows" in data else None
    if kind is not None:
        section = {k: v for k, v in data.items() if k in ("config", "rows", "sweep", "tuning")}
        return {"meta": None, kind: {**section, "meta": meta}}
    sections = {k: dict(data[k]) for k in SECTIONS if k in data}
    if not sections:
        raise ValueError(
            f"{name}: no benchmark section in it (expected one of {', '.join(SECTIONS)}, or "
            "the config and rows of benchmarks.digits or benchmarks.continuous)"
        )
    if "section_s" in meta:
        return {"meta": meta, **sections}
    return {"meta": None, **{k: {**v, "meta": meta} for k, v in sections.items()}}


def _vi_part(row: dict) -> str:
    return "energies" if row.get("part") == "energies" else "planar"


def _merge_vi(old: dict, new: dict) -> dict:
    """The variational-inference section of two files: each part (the planar depths on U1,
    the lesson-08 flows on U1-U4) from the last file that has it."""
    parts = {_vi_part(r) for r in new["rows"]}
    merged = dict(old)
    merged["rows"] = [r for r in old["rows"] if _vi_part(r) not in parts] + list(new["rows"])
    if "planar" in parts:
        merged.update(config=new["config"], curves=new.get("curves", []))
        merged.pop("meta", None)
        if new.get("meta"):
            merged["meta"] = new["meta"]
    if "energies" in parts:
        merged["energies_config"] = new["config"]
        merged.pop("energies_meta", None)
        if new.get("meta"):
            merged["energies_meta"] = new["meta"]
    return merged


def merge(stores: list[dict]) -> dict:
    """Results files (:func:`normalize` each) as one results dictionary for :func:`render`.

    The first must be the suite's (its ``meta`` makes the page's header). A later file's
    section replaces an earlier one, except the variational-inference section, where each
    part comes from the last file that has it (:func:`_merge_vi`). A section that comes from
    another file than the first keeps that file's ``meta``, and the header lists it.
    """
    if not stores or stores[0]["meta"] is None:
        raise ValueError(
            "the first results file must be one of `python -m benchmarks --json` (its meta "
            "makes the page's header), e.g. docs/benchmarks.json"
        )
    results = {"meta": stores[0]["meta"]}
    for i, store in enumerate(stores):
        for key, section in store.items():
            if key == "meta":
                continue
            if i > 0 and store["meta"] is not None and not section.get("meta"):
                section = {**section, "meta": store["meta"]}
            if key == "vi" and key in results:
                results[key] = _merge_vi(results[key], section)
            else:
                results[key] = section
    return {"meta": results["meta"], **{k: results[k] for k in SECTIONS if k in results}}
