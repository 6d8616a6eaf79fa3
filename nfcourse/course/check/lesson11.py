"""Checks of lesson 11 (evaluating flows): the held-out NLL with its standard error, and the
unbiased MMD^2 estimator.

The NLL check gives the learner's function the per-coordinate log-densities ``(N, D)`` of
held-out points under a model with independent coordinates (as the independent-pixels model
of lesson 07 gives them); the per-point NLL is minus their sum over the coordinates, and the
answer is the mean of these ``N`` values with its standard error ``s / sqrt(N)``. The MMD
check runs the learner's estimator on two Gaussian samples of different sizes, moved apart,
and on two samples of one distribution (where the unbiased estimate is often negative), with
a bandwidth that tells ``sigma``, ``sigma^2``, ``2 sigma`` and ``2 sigma^2`` apart. A wrong
answer is compared with the typical mistakes to name the likely one.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch
from torch import Tensor

from ...evaluate import mmd2
from ._core import Mistake, exercise

__all__ = ["mmd_estimator", "nll_standard_error"]

F64 = torch.float64


def _number(value: object, what: str, advice: str) -> float:
    """One number (a Python number or a one-element tensor) as a float, or a Mistake."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, Tensor) and value.is_floating_point():
        if value.numel() == 1:
            return value.detach().double().item()
        raise Mistake(
            f"{what} is a tensor of shape {tuple(value.shape)}; expected one number.", advice
        )
    raise Mistake(f"{what} is {type(value).__name__}; expected one number (a float).", advice)


def _near(a: float, b: float, rtol: float = 1e-9) -> bool:
    return math.isfinite(a) and abs(a - b) <= rtol * max(abs(b), 1e-12)


# --- Exercise 11.1: the held-out NLL and its standard error -------------------------------------


def _log_p_coords(seed: int = 11, n: int = 400, d: int = 5) -> Tensor:
    """Per-coordinate log-densities of held-out points under a slightly wrong Gaussian model."""
    g = torch.Generator().manual_seed(seed)
    x = 1.3 * torch.randn(n, d, generator=g, dtype=F64) + 0.2
    return -0.5 * x.square() - 0.5 * math.log(2 * math.pi)


def _nll_variants(log_p: Tensor) -> list[tuple[float, float, str, str]]:
    """``(nll, se, what, hint)`` of the typical wrong answers (the standard errors with ddof=1)."""
    n, d = log_p.shape
    per_point = -log_p.sum(-1)
    nll, std, var = per_point.mean().item(), per_point.std().item(), per_point.var().item()
    se = std / math.sqrt(n)
    per_dim = -log_p.mean(-1)
    flat = -log_p.flatten()
    return [
        (
            nll,
            std,
            "your standard error is the standard deviation of the per-point NLL",
            "std instead of std / sqrt(N): the standard deviation is the spread of one point's "
            "NLL; the error of their mean over N independent points is std / sqrt(N).",
        ),
        (
            nll,
            var / math.sqrt(n),
            "your standard error is the variance of the per-point NLL over sqrt(N)",
            "variance instead of standard deviation: take the square root of the variance "
            "before dividing by sqrt(N), SE = sqrt(var) / sqrt(N).",
        ),
        (
            nll,
            var / n,
            "your standard error is var / N, the square of the standard error",
            "variance instead of standard deviation: var / N is the variance of the mean; "
            "its square root is the standard error, std / sqrt(N).",
        ),
        (
            nll,
            var,
            "your standard error is the variance of the per-point NLL",
            "variance instead of standard deviation, and no 1 / sqrt(N): SE = std / sqrt(N).",
        ),
        (
            -nll,
            se,
            "your NLL is the mean log-likelihood, the NLL with the wrong sign",
            "the sign of the log-likelihood: the negative log-likelihood of a point is "
            "-log p(x) = -sum_d log p_d(x_d), positive for a density below 1.",
        ),
        (
            se,
            nll,
            "your two numbers come in the wrong order",
            "return (nll, se): the mean first, then its standard error.",
        ),
        (
            per_dim.mean().item(),
            per_dim.std().item() / math.sqrt(n),
            "your NLL is the mean over the coordinates, D times too small (nats per dimension)",
            "mean over dims instead of sum: the log-density of a point is the sum of its "
            f"D = {d} coordinates' log-densities; the NLL per point is minus that sum.",
        ),
        (
            flat.mean().item() * d,
            flat.std().item() / math.sqrt(n * d),
            "your standard error is that of the N x D per-coordinate values",
            "SE of the wrong quantity: the independent draws are the N points, not the N x D "
            "coordinates. Sum over the coordinates first, l_n = -sum_d log p_d, then take "
            "std(l) / sqrt(N).",
        ),
        (
            flat.mean().item(),
            flat.std().item() / math.sqrt(n * d),
            "your NLL and standard error are those of the N x D per-coordinate values",
            "SE of the wrong quantity, and mean over dims instead of sum: sum over the "
            "coordinates first, l_n = -sum_d log p_d, then return (mean(l), std(l) / sqrt(N)).",
        ),
    ]


@exercise("Exercise 11.1")
def nll_standard_error(fn: Callable[[Tensor], tuple[float, float]]) -> str:
    """Check ``nll_standard_error(log_p) -> (nll, se)`` from per-coordinate log-densities."""
    log_p = _log_p_coords()
    n, d = log_p.shape
    out = fn(log_p.clone())
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        got = f"a {type(out).__name__} of {len(out)}" if isinstance(out, (tuple, list)) else None
        if isinstance(out, Tensor) and out.numel() == 2:
            out = tuple(out.flatten())
        else:
            raise Mistake(
                f"nll_standard_error returned {got or type(out).__name__}; expected a pair "
                "(nll, se).",
                "end with `return nll, se`: two numbers, the mean NLL and its standard error.",
            )
    per_point = "reduce over the points: one number, the mean of l_n = -sum_d log p_d."
    got_nll = _number(out[0], "the NLL you returned", per_point)
    got_se = _number(out[1], "the standard error you returned", "one number: std(l) / sqrt(N).")
    values = -log_p.sum(-1)
    nll, std = values.mean().item(), values.std().item()
    se = std / math.sqrt(n)
    # ddof 0 or 1, sqrt(N) or sqrt(N - 1): they differ by a factor about 1 +- 1/(2N); all fine
    ok_nll, ok_se = _near(got_nll, nll), _near(got_se, se, rtol=1.0 / n)
    if ok_nll and ok_se:
        return (
            f"your NLL is {got_nll:.4f} nats per point with standard error {got_se:.4f}, the "
            f"reference's ({n} points of {d} coordinates): the standard deviation of one "
            f"point's NLL, {std:.3f}, over sqrt({n}). (ddof=0 or 1 both fine: they differ by a "
            f"factor sqrt(N/(N-1)) = {math.sqrt(n / (n - 1)):.5f}.)"
        )
    for v_nll, v_se, what, hint in _nll_variants(log_p):
        if _near(got_nll, v_nll, 1e-6) and _near(got_se, v_se, rtol=1.0 / n):
            raise Mistake(
                f"{what}: ({got_nll:.4g}, {got_se:.4g}) instead of ({nll:.4f}, {se:.4f}).", hint
            )
    if not ok_nll:
        raise Mistake(
            f"your NLL is {got_nll:.6g}; the mean NLL of these {n} points is {nll:.6g}.",
            "the NLL of point n is l_n = -log_p[n].sum() (over its coordinates); return "
            "their mean over the points.",
        )
    raise Mistake(
        f"your NLL is right, but your standard error is {got_se:.6g}; it should be {se:.6g}.",
        "SE = std(l) / sqrt(N), with l_n = -sum_d log p_d(x_nd) the per-point NLL and N the "
        "number of points.",
    )


# --- Exercise 11.2: the unbiased MMD^2 ----------------------------------------------------------


def _samples(seed: int, m: int, n: int, shift: float) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, 2, generator=g, dtype=F64)
    y = torch.randn(n, 2, generator=g, dtype=F64) * 1.2 + torch.tensor([shift, 0.0], dtype=F64)
    return x, y


def _mmd_variants(x: Tensor, y: Tensor, sigma: float) -> list[tuple[float, str, str]]:
    """``(value, what, hint)`` of the typical wrong estimates."""
    m, n = len(x), len(y)

    def gram(a: Tensor, b: Tensor, denom: float, power: int = 2) -> Tensor:
        return torch.exp(-torch.cdist(a, b).pow(power) / denom)

    def parts(denom: float, power: int = 2) -> tuple[Tensor, Tensor, Tensor]:
        return gram(x, x, denom, power), gram(y, y, denom, power), gram(x, y, denom, power)

    def unbiased(kxx: Tensor, kyy: Tensor, kxy: Tensor, cross: float = 2.0) -> float:
        sxx, syy = kxx.sum() - kxx.trace(), kyy.sum() - kyy.trace()
        return (sxx / (m * (m - 1)) + syy / (n * (n - 1)) - cross * kxy.mean()).item()

    kxx, kyy, kxy = parts(2 * sigma**2)
    right = unbiased(kxx, kyy, kxy)
    off = (kxx.sum() - kxx.trace(), kyy.sum() - kyy.trace())
    variants = [
        (
            (kxx.mean() + kyy.mean() - 2 * kxy.mean()).item(),
            "your value is the biased estimate: the diagonal terms k(x_i, x_i) = 1 kept and "
            "the sums divided by m^2 and n^2",
            "the biased estimator including diagonal terms (the V-statistic): it is above 0 "
            "even for equal distributions. Leave out i = j in the within-sample sums and "
            "divide by m(m-1) and n(n-1).",
        ),
        (
            (kxx.sum() / (m * (m - 1)) + kyy.sum() / (n * (n - 1)) - 2 * kxy.mean()).item(),
            "your within-sample sums keep the diagonal terms k(x_i, x_i) = 1",
            "diagonal terms included: the unbiased sums run over i != j. Subtract the "
            "diagonal (K.sum() - K.trace(), or zero it with K.fill_diagonal_(0)) before "
            "dividing by m(m-1).",
        ),
        (
            (off[0] / m**2 + off[1] / n**2 - 2 * kxy.mean()).item(),
            "your within-sample sums leave out i = j but are divided by m^2 and n^2",
            "normalizing by n^2 instead of n(n-1): without the diagonal there are m(m-1) "
            "pairs i != j in the x sum (and n(n-1) in the y sum); divide by that.",
        ),
        (
            unbiased(kxx, kyy, kxy, cross=1.0),
            "your cross term k(x_i, y_j) is counted once",
            "a missing factor 2 on the cross term: MMD^2 = E k(x,x') + E k(y,y') - 2 E k(x,y).",
        ),
        (
            unbiased(*parts(sigma)),
            "your kernel is exp(-||a - b||^2 / sigma)",
            "sigma vs 2 sigma^2 in the kernel: the Gaussian kernel with bandwidth sigma is "
            "exp(-||a - b||^2 / (2 sigma^2)).",
        ),
        (
            unbiased(*parts(sigma**2)),
            "your kernel is exp(-||a - b||^2 / sigma^2)",
            "sigma vs 2 sigma^2 in the kernel: the denominator is 2 sigma^2, "
            "exp(-||a - b||^2 / (2 sigma^2)).",
        ),
        (
            unbiased(*parts(2 * sigma)),
            "your kernel is exp(-||a - b||^2 / (2 sigma))",
            "sigma vs 2 sigma^2 in the kernel: square the bandwidth, "
            "exp(-||a - b||^2 / (2 sigma^2)).",
        ),
        (
            unbiased(*parts(2 * sigma**2, power=1)),
            "your kernel uses the distance ||a - b||, not its square",
            "squared distance not squared: the Gaussian kernel is exp(-||a - b||^2 / "
            "(2 sigma^2)); torch.cdist gives the distance, square it (or use "
            "((a[:, None] - b[None]) ** 2).sum(-1)).",
        ),
        (
            math.sqrt(abs(right)),
            "your value is the square root of MMD^2",
            "returning MMD instead of MMD^2: the unbiased estimator is of the square, and it "
            "can be negative, so do not take its square root.",
        ),
    ]
    return variants


@exercise("Exercise 11.2")
def mmd_estimator(fn: Callable[[Tensor, Tensor, float], Tensor]) -> str:
    """Check ``mmd_estimator(x, y, bandwidth) -> MMD^2_u`` with the Gaussian kernel."""
    cases = [
        ("two samples of different distributions (m = 40, n = 30)", 21, 40, 30, 1.0, 0.8),
        ("two samples of one distribution (m = 25, n = 35)", 22, 25, 35, 0.0, 1.5),
    ]
    values = []
    for what, seed, m, n, shift, sigma in cases:
        x, y = _samples(seed, m, n, shift)
        if shift == 0.0:  # one distribution: the same scale too
            y = (y / 1.2).contiguous()
        ref = mmd2(x, y, bandwidth=sigma)
        out = fn(x.clone(), y.clone(), sigma)
        got = _number(
            out,
            "the value you returned",
            "reduce to one number: the sums over the pairs, each divided by its number of pairs.",
        )
        if _near(got, ref, 1e-7):
            values.append(got)
            continue
        for value, mistake, hint in _mmd_variants(x, y, sigma):
            if _near(got, value, 1e-7):
                raise Mistake(
                    f"with {what} and bandwidth {sigma}, {mistake}: {got:.6f} instead of "
                    f"{ref:.6f}.",
                    hint,
                )
        raise Mistake(
            f"with {what} and bandwidth {sigma} your MMD^2 is {got:.6g}; the unbiased "
            f"estimate is {ref:.6g}.",
            "MMD^2_u = sum_{i!=j} k(x_i,x_j) / (m(m-1)) + sum_{i!=j} k(y_i,y_j) / (n(n-1)) - "
            "2 sum_{i,j} k(x_i,y_j) / (mn), with k(a,b) = exp(-||a-b||^2 / (2 sigma^2)).",
        )
    return (
        f"your MMD^2 equals the unbiased estimate: {values[0]:.4f} for samples of two "
        f"distributions, and {values[1]:.4f} for two samples of one distribution (the "
        "unbiased estimate scatters around 0 there, and can be negative)."
    )
