"""Variational inference: planar flows of K = 2, 8, 32 layers fitted to the energy U1.

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

import math
import time
from dataclasses import dataclass

import torch

from nfcourse import energies

from . import models


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
