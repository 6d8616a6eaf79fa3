"""Variational inference: the energies U1-U4 fitted by reverse KL, with exact KLs.

Two parts. The first: planar flows of K = 2, 8, 32 layers fitted to the energy U1, with
the time to reach a target KL. The second (``VIConfig.flows``, off unless given, see
:data:`FULL`): the course's flows of lesson 08 (planar, RealNVP, IAF, NSF, built by
:data:`FLOWS`) on all four energies at the lesson's budget, with and without annealing,
and the best flow of the lesson with a longer budget.

The spline flow of the lesson acts on ``[-NSF_BOUND, NSF_BOUND]``, wider than the default
``[-5, 5]`` of :func:`nfcourse.nsf`. A spline maps its interval onto itself and is the
identity outside, and the base ``N(0, I)`` puts almost nothing beyond 5, so a flow of
such splines has almost no mass at ``|z1| > bound``; the envelope of U2-U4 leaves 3.1% of
their mass at ``|z1| > 5``, which puts a floor of ``-log(1 - 0.031) = 0.031`` nats under
the KL of any such flow with the default bound (beyond 7 the mass is below 1e-8). The
same flow with the default bound, ``NSF-b5``, is kept for the comparison.

The target ``p(z) = exp(-U1(z)) / Z`` of Rezende and Mohamed (2015) has a known
normalizer (:mod:`nfcourse.energies`), so the reverse KL ``KL(q || p) = E_q[log q - log p]``
is estimated without bias from samples of the flow: the table reports it exactly in
that sense (with its Monte Carlo standard error), not up to a constant.

The loop is the same for every run: Adam with a cosine learning-rate decay, ``n_samples``
reparameterized samples per step, and the target annealed over the first steps
(``E_q[log q - beta log p~]`` with ``beta`` rising linearly from 0.01 to 1), as in the paper.
Every ``eval_every`` steps the KL is measured on fresh samples (not counted in the time),
which gives the time to reach ``target_kl``.

U1 is a ring with two symmetric bumps at ``z1 = +-2``. A flow that found only one of them
(mode collapse: reverse KL is mode-seeking) has a KL near ``log 2`` and puts most of its
samples on one side; the table reports the fraction of samples with ``z1 > 0`` (0.5 for
the target) and flags a run as collapsed when it is below 0.1 or above 0.9.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path

import torch

import nfcourse as nf
from nfcourse import energies
from nfcourse.evaluate import reverse_kl

from . import models

NSF_BOUND = 7.0  # the spline interval of the lesson's NSF (the default of nf.nsf is 5)

# The flows of lesson 08, built exactly as the lesson builds them, and NSF-b5: the same
# spline flow with the default bound 5, for comparison (the lesson's flow until the
# floor above was found).
FLOWS: dict[str, Callable[[], nf.Flow]] = {
    "planar": lambda: nf.planar_flow(2, layers=32),
    "RealNVP": lambda: nf.realnvp(2, layers=6, hidden=(32, 32)),
    "IAF": lambda: nf.iaf(2, layers=5, hidden=(32, 32)),
    "NSF": lambda: nf.nsf(2, layers=3, hidden=(32, 32), bound=NSF_BOUND),
    "NSF-b5": lambda: nf.nsf(2, layers=3, hidden=(32, 32)),
}


@dataclass
class VIConfig:
    """The budget of every variational-inference run."""

    energy: str = "U1"
    layers: tuple[int, ...] = (2, 8, 32)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    steps: int = 2000
    n_samples: int = 256
    lr: float = 2e-2
    anneal_steps: int = 500
    beta_start: float = 0.01
    eval_every: int = 100
    n_eval: int = 4096
    n_final: int = 20_000
    target_kl: float = 0.05  # nats: "reached" when the measured KL is at most this
    collapse: float = 0.1  # a side holding less than this fraction of the samples
    # second part: the lesson's flows on every energy (off when ``flows`` is empty)
    flows: tuple[str, ...] = ()
    energies: tuple[str, ...] = ("U1", "U2", "U3", "U4")
    flow_seeds: tuple[int, ...] = (0, 1)
    flow_steps: int = 300  # the lesson's budget
    flow_lr: float = 1e-2
    flow_anneal_steps: int = 60  # and 0, for the comparison
    long_flows: tuple[str, ...] = ("NSF",)
    long_steps: int = 2000
    long_lr: float = 5e-3
    long_anneal_steps: int = 200  # FULL: 500 (over 200, U4 seed 2 of NSF stayed at KL 0.136)
    long_seeds: tuple[int, ...] | None = (0, 1, 2, 3, 4)  # None: flow_seeds
    long_samples: int | None = 1024  # samples per step of the longer runs; None: n_samples


# The full second part (the planar-depth part keeps its defaults).
FULL = VIConfig(flows=tuple(FLOWS), long_anneal_steps=500)


@torch.no_grad()
def exact_kl(model: models.Model, energy: energies.Energy, n: int) -> tuple[float, float, float]:
    """``KL(q || p)`` (nats) from ``n`` samples of ``q``, its standard error, and the
    fraction of the samples with ``z1 > 0``."""
    model.module.eval()
    x, log_q = model.rsample_and_log_prob(n)
    diff = (log_q - energy.log_prob(x)).double()
    model.module.train()
    right = (x[:, 0] > 0).double().mean().item()
    return diff.mean().item(), diff.std().item() / math.sqrt(n), right


def fit(model: models.Model, energy: energies.Energy, cfg: VIConfig) -> dict:
    """Minimize the (annealed) reverse KL; returns the curve and the timings."""
    params = [p for p in model.module.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    curve: list[tuple[int, float, float]] = []  # (step, training seconds, KL)
    trained = 0.0
    reached = None
    model.module.train()
    for step in range(1, cfg.steps + 1):
        start = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = 0.5 * cfg.lr * (1 + math.cos(math.pi * (step - 1) / cfg.steps))
        beta = 1.0
        if step <= cfg.anneal_steps:
            beta = cfg.beta_start + (1 - cfg.beta_start) * (step - 1) / cfg.anneal_steps
        x, log_q = model.rsample_and_log_prob(cfg.n_samples)
        loss = (log_q + beta * energy.energy(x)).mean()
        if not math.isfinite(loss.item()):
            return {"curve": curve, "seconds": trained, "reached_s": reached, "diverged_at": step}
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        trained += time.perf_counter() - start
        if step % cfg.eval_every == 0 or step == cfg.steps:
            kl = exact_kl(model, energy, cfg.n_eval)[0]
            curve.append((step, trained, kl))
            if reached is None and step > cfg.anneal_steps and kl <= cfg.target_kl:
                reached = trained
    return {"curve": curve, "seconds": trained, "reached_s": reached, "diverged_at": None}


def run(cfg: VIConfig, log=print) -> tuple[list[dict], list[dict]]:
    """Fit every (K, seed); returns one row per run and the KL curves (one row per point)."""
    energy = energies.get(cfg.energy)
    rows, curves = [], []
    for k in cfg.layers:
        for seed in cfg.seeds:
            torch.manual_seed(seed)
            model = models.planar(k)
            result = fit(model, energy, cfg)
            if result["diverged_at"] is None:
                kl, se, right = exact_kl(model, energy, cfg.n_final)
            else:
                kl, se, right = math.nan, math.nan, math.nan
            collapsed = not math.isnan(right) and min(right, 1 - right) < cfg.collapse
            rows.append(
                {
                    "model": model.label,
                    "K": k,
                    "seed": seed,
                    "kl": kl,
                    "se": se,
                    "right": right,
                    "collapsed": collapsed,
                    "seconds": result["seconds"],
                    "reached_s": result["reached_s"],
                    "diverged_at": result["diverged_at"],
                    "params": model.parameters,
                }
            )
            curves += [
                {"K": k, "seed": seed, "step": s, "seconds": t, "kl": v}
                for s, t, v in result["curve"]
            ]
            log(
                f"vi {model.label:14s} seed {seed}: KL {kl:.3f} +- {se:.3f}, "
                f"z1>0 {right:.2f}{' COLLAPSED' if collapsed else ''}, "
                f"{result['seconds']:.1f} s"
            )
    return rows, curves


# ----------------------------------------------------------------------------
# second part: the lesson's flows on all four energies


def fit_flow(
    flow: str,
    energy: str,
    seed: int,
    steps: int,
    lr: float,
    anneal_steps: int,
    cfg: VIConfig,
    n_samples: int | None = None,
    budget: str = "lesson",
) -> dict:
    """One reverse-KL fit of a lesson flow with :func:`nfcourse.fit_reverse_kl`; one row.

    ``n_samples`` per step (``None``: ``cfg.n_samples``); ``budget`` (``"lesson"`` or
    ``"long"``) only labels the row."""
    n_samples = cfg.n_samples if n_samples is None else n_samples
    target = energies.get(energy)
    log_z = target.log_normalizer  # computed (and cached) before the clock starts
    torch.manual_seed(seed)
    model = FLOWS[flow]()
    diverged = None
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", nf.train.DivergenceWarning)
        try:
            nf.fit_reverse_kl(
                model,
                lambda z: -target.energy(z),
                steps=steps,
                n_samples=n_samples,
                lr=lr,
                anneal_steps=anneal_steps,
                seed=seed,
                progress=False,
            )
        except nf.train.NonFiniteLossError as err:
            diverged = err.step
    seconds = time.perf_counter() - start
    kl, se = reverse_kl(
        model, lambda z: -target.energy(z), n=cfg.n_final, log_normalizer=log_z, seed=10_000 + seed
    )
    return {
        "part": "energies",
        "budget": budget,
        "flow": flow,
        "energy": energy,
        "seed": seed,
        "steps": steps,
        "n_samples": n_samples,
        "lr": lr,
        "anneal_steps": anneal_steps,
        "kl": kl,
        "se": se,
        "seconds": seconds,
        "diverged_at": diverged,
        "exploded": any(issubclass(w.category, nf.train.DivergenceWarning) for w in caught),
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        # a spline flow's interval and bins, as built (so a reader can check the builder)
        "bound": next((m.bound for m in model.modules() if hasattr(m, "bound")), None),
        "bins": next((m.bins for m in model.modules() if hasattr(m, "bins")), None),
    }


def run_energies(
    cfg: VIConfig,
    log=print,
    save: Callable[[list[dict]], None] | None = None,
    parts: tuple[str, ...] = ("lesson", "long"),
    rows: list[dict] | None = None,
) -> list[dict]:
    """Every lesson flow on every energy at the lesson's budget (annealed and not), then
    the ``long_flows`` with the longer budget, one seed after the other (so that a run cut
    short still has every energy). ``save(rows)`` is called after every run; ``rows`` are
    earlier results to extend."""
    plan = []
    if "lesson" in parts:
        for energy in cfg.energies:
            for flow in cfg.flows:
                for anneal in dict.fromkeys((cfg.flow_anneal_steps, 0)):
                    plan += [
                        (flow, energy, s, cfg.flow_steps, cfg.flow_lr, anneal, None, "lesson")
                        for s in cfg.flow_seeds
                    ]
    if "long" in parts:
        long = (cfg.long_steps, cfg.long_lr, cfg.long_anneal_steps, cfg.long_samples, "long")
        for seed in cfg.flow_seeds if cfg.long_seeds is None else cfg.long_seeds:
            plan += [
                (flow, energy, seed, *long) for energy in cfg.energies for flow in cfg.long_flows
            ]
    if plan:
        fit_flow(plan[0][0], cfg.energies[0], 0, 2, cfg.flow_lr, 0, cfg)  # warm-up, not timed
    rows = list(rows or [])
    for flow, energy, seed, steps, lr, anneal, n_samples, budget in plan:
        row = fit_flow(flow, energy, seed, steps, lr, anneal, cfg, n_samples, budget)
        rows.append(row)
        log(
            f"vi {flow:8s} {energy} seed {seed}, {steps} steps of {row['n_samples']}, "
            f"anneal {anneal}: KL {row['kl']:.4f} +- {row['se']:.4f}, {row['seconds']:.1f} s"
        )
        if save is not None:
            save(rows)
    return rows


def run_all(cfg: VIConfig, log=print) -> tuple[list[dict], list[dict]]:
    """Both parts: the planar depths on U1 (:func:`run`), then :func:`run_energies`."""
    rows, curves = run(cfg, log) if cfg.layers else ([], [])
    if cfg.flows:
        rows += run_energies(cfg, log)
    return rows, curves


def _budget(row: dict, cfg: VIConfig) -> str:
    """``"lesson"`` or ``"long"``: the row's label, or (rows written before the label) its steps."""
    return row.get("budget", "lesson" if row["steps"] == cfg.flow_steps else "long")


def main(argv: list[str]) -> None:
    """``python -m benchmarks.vi [output.json] [--long-only | --lesson-only] [--flows=A,B]``:
    :data:`FULL` without the planar depths. ``--long-only`` runs only the longer runs,
    ``--lesson-only`` only the runs at the lesson's budget, ``--flows`` only these flows;
    with any of them, the other rows already in ``output.json`` are kept (and its meta,
    under ``earlier``)."""
    torch.set_num_threads(1)
    options = [a for a in argv if a.startswith("--")]
    paths = [a for a in argv if not a.startswith("--")]
    output = Path(paths[0] if paths else "docs/benchmarks-vi.json")
    cfg = replace(FULL, layers=())
    parts = ("long",) if "--long-only" in options else ("lesson", "long")
    if "--lesson-only" in options:
        parts = ("lesson",)
    chosen = next(
        (a.split("=", 1)[1].split(",") for a in options if a.startswith("--flows=")), None
    )
    unknown = (
        set(options)
        - {"--long-only", "--lesson-only"}
        - {a for a in options if a.startswith("--flows=")}
    )
    if unknown or set(chosen or ()) - set(FLOWS) or len(parts) == 0:
        raise SystemExit(f"benchmarks.vi: unknown options or flows in {argv}; flows: {list(FLOWS)}")
    keep, earlier_meta = [], None
    if len(parts) == 1 or chosen is not None:
        earlier = json.loads(output.read_text())
        earlier_meta = earlier["meta"]
        keep = [
            r
            for r in earlier["vi"]["rows"]
            if _budget(r, cfg) not in parts or (chosen is not None and r["flow"] not in chosen)
        ]
    run_cfg = cfg
    if chosen is not None:
        run_cfg = replace(
            cfg,
            flows=tuple(f for f in cfg.flows if f in chosen),
            long_flows=tuple(f for f in cfg.long_flows if f in chosen),
        )
    start = time.perf_counter()

    def save(rows: list[dict], done: bool = False) -> None:
        meta = {
            "date": date.today().isoformat(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "seconds": time.perf_counter() - start,
            "command": "python -m benchmarks.vi " + " ".join(argv),
            "complete": done,
        }
        if earlier_meta is not None:
            meta["earlier"] = earlier_meta  # the run that made the rows kept
        results = {"meta": meta, "vi": {"config": asdict(cfg), "rows": rows, "curves": []}}
        output.write_text(json.dumps(results, indent=1) + "\n")

    rows = run_energies(run_cfg, lambda line: print(line, flush=True), save, parts, keep)
    save(rows, done=True)
    print(f"wrote {output}")


if __name__ == "__main__":
    main(sys.argv[1:])
