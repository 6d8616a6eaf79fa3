"""Checks of lesson 10: the reference passes, a stub is "not done", mistakes get their hint.

Each planted mistake is one a learner makes when writing the flow-matching loss, an Euler
sampler or Hutchinson's estimator; the check must fail on it with the hint that names that
mistake (a hint naming another one would send the learner the wrong way).
"""

from __future__ import annotations

import time

import pytest
import torch
from check_support import assert_hint, not_strict  # noqa: F401 (not_strict: an autouse fixture)

from nfcourse.course.check import CheckFailed, lesson10

# --- Exercise 10.1: the flow-matching loss -------------------------------------------------------


def loss_with(
    target="x1 - x0",
    path="right",
    t_draw="per example",
    reduce="sum",
    x0_draw="randn",
    t_shape="column",
    detach=False,
):
    def flow_matching_loss(field, x1):
        n = x1.shape[0]
        x0 = torch.randn_like(x1) if x0_draw == "randn" else torch.rand_like(x1)
        if t_draw == "per example":
            t = torch.rand(n, 1, dtype=x1.dtype)
        elif t_draw == "per batch":
            t = torch.rand(1, dtype=x1.dtype)
        else:  # "randn"
            t = torch.randn(n, 1, dtype=x1.dtype)
        xt = (1 - t) * x0 + t * x1 if path == "right" else t * x0 + (1 - t) * x1
        u = {"x1 - x0": x1 - x0, "x0 - x1": x0 - x1, "x1 - xt": x1 - xt}[target]
        v = field(xt, t if t_shape == "column" else t[:, 0])
        if detach:
            v = v.detach()
        sq = (v - u) ** 2
        return {
            "sum": lambda: sq.sum(-1).mean(),
            "mean": lambda: sq.mean(),
            "sum all": lambda: sq.sum(),
            "norm": lambda: sq.sum(-1).sqrt().mean(),
            "per example": lambda: sq.sum(-1),
        }[reduce]()

    return flow_matching_loss


def loss_stub(field, x1):
    raise NotImplementedError("Exercise 10.1: the flow-matching loss")


def test_fm_loss_reference_passes():
    result = lesson10.fm_loss(loss_with())
    assert result.status == "passed", result.line
    assert lesson10.fm_loss(loss_with(t_shape="flat")), "t of shape (N,) is fine too"


def test_fm_loss_stub_is_not_done():
    assert lesson10.fm_loss(loss_stub).status == "not done"


@pytest.mark.parametrize(
    ("learner", "hint"),
    [
        (loss_with(target="x0 - x1"), "target velocity sign"),
        (loss_with(path="swapped"), "t and 1 - t swapped"),
        (loss_with(t_draw="per batch"), "t is sampled once per batch"),
        (loss_with(reduce="mean"), "mean vs sum over dimensions"),
        (loss_with(target="x1 - xt"), "not x1 - x_t"),
        (loss_with(reduce="sum all"), "not a sum"),
        (loss_with(reduce="norm"), "square the norm"),
        (loss_with(reduce="per example"), "average the squared errors"),
        (loss_with(t_draw="randn"), "uniform on [0, 1]"),
        (loss_with(x0_draw="rand"), "standard normal, not torch.rand"),
        (loss_with(detach=True), "without .detach()"),
        (lambda field, x1: (x1**2).sum(-1).mean(), "call field(xt, t)"),
    ],
    ids=[
        "sign",
        "t swapped",
        "t per batch",
        "mean over dims",
        "x1 - xt",
        "sum over examples",
        "norm not squared",
        "not reduced",
        "t normal",
        "x0 uniform",
        "detached",
        "no field",
    ],
)
def test_fm_loss_mistakes_get_their_hint(learner, hint):
    assert_hint(lesson10.fm_loss(learner), hint)


# --- Exercise 10.2: an Euler sampler -------------------------------------------------------------


def euler_with(times="k/steps", dt="1/steps", count=0, direction=1, restart=False):
    def euler_sample(field, z, steps):
        x = z
        n = steps + count
        for k in range(n):
            t = {
                "k/steps": k / steps,
                "linspace": k / (steps - 1),
                "end": (k + 1) / steps,
                "reversed": 1 - k / steps,
            }[times]
            step = {"1/steps": 1 / steps, "1": 1.0}[dt]
            base = z if restart else x
            x = base + direction * step * field(x, torch.tensor(t))
        return x

    return euler_sample


def euler_stub(field, z, steps):
    raise NotImplementedError("Exercise 10.2: an Euler sampler")


def euler_per_point_times(field, z, steps):
    """Another right answer: one time per point, as a column."""
    x = z
    for k in range(steps):
        x = x + field(x, torch.full((len(z), 1), k / steps, dtype=z.dtype)) / steps
    return x


def test_euler_reference_passes():
    result = lesson10.euler_sampler(euler_with())
    assert result.status == "passed", result.line
    assert lesson10.euler_sampler(euler_per_point_times)


def test_euler_stub_is_not_done():
    assert lesson10.euler_sampler(euler_stub).status == "not done"


@pytest.mark.parametrize(
    ("learner", "hint"),
    [
        (euler_with(dt="1"), "wrong dt"),
        (euler_with(times="linspace"), "wrong dt: torch.linspace(0, 1, steps)"),
        (euler_with(times="reversed"), "wrong time direction"),
        (euler_with(direction=-1), "wrong time direction"),
        (euler_with(count=1), "off-by-one number of steps"),
        (euler_with(count=-1), "off-by-one number of steps"),
        (euler_with(times="end"), "at the start of each step"),
        (euler_with(restart=True), "with the x of the previous step"),
        (lambda field, z, steps: [euler_with()(field, z, steps)], "return x after the last step"),
    ],
    ids=[
        "dt 1",
        "linspace grid",
        "reversed times",
        "steps backwards",
        "one step too many",
        "one step too few",
        "right end times",
        "restarts from z",
        "a list",
    ],
)
def test_euler_mistakes_get_their_hint(learner, hint):
    assert_hint(lesson10.euler_sampler(learner), hint)


# --- Exercise 10.3: Hutchinson's estimator -------------------------------------------------------


def hutchinson_with(probe="rademacher", shared=False, dot=True, seed=None):
    def hutchinson_divergence(field, x, t):
        x = x.detach().requires_grad_(True)
        shape = x.shape[-1:] if shared else x.shape
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        eps = {
            "rademacher": lambda: torch.randint(0, 2, shape, generator=g).to(x.dtype) * 2 - 1,
            "gaussian": lambda: torch.randn(shape, generator=g, dtype=x.dtype),
            "uniform": lambda: torch.rand(shape, generator=g, dtype=x.dtype),
        }[probe]().expand_as(x)
        v = field(x, t)
        (vjp,) = torch.autograd.grad(v, x, eps)
        return (vjp * eps).sum(-1) if dot else vjp.sum(-1)

    return hutchinson_divergence


def hutchinson_exact(field, x, t):
    x = x.detach().requires_grad_(True)
    v = field(x, t)
    return sum(
        torch.autograd.grad(v[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(x.shape[1])
    )


def hutchinson_stub(field, x, t):
    raise NotImplementedError("Exercise 10.3: Hutchinson's estimator")


def test_hutchinson_reference_passes_with_either_probe():
    rademacher = lesson10.hutchinson(hutchinson_with())
    assert rademacher.status == "passed", rademacher.line
    assert "a Rademacher probe" in rademacher.message
    gaussian = lesson10.hutchinson(hutchinson_with(probe="gaussian"))
    assert gaussian.status == "passed" and "a Gaussian probe" in gaussian.message


def test_hutchinson_stub_is_not_done():
    assert lesson10.hutchinson(hutchinson_stub).status == "not done"


@pytest.mark.parametrize(
    ("learner", "hint"),
    [
        (hutchinson_with(probe="uniform"), "probe not Rademacher/Gaussian"),
        (hutchinson_with(shared=True), "probe reused across samples"),
        (hutchinson_with(dot=False), "finish the product"),
        (hutchinson_with(seed=0), "no fixed seed inside"),
        (hutchinson_exact, "that is the exact divergence"),
        (lambda field, x, t: hutchinson_with()(field, x, t).sum(), "one estimate per point"),
    ],
    ids=["uniform probe", "shared probe", "no dot product", "fixed seed", "exact trace", "summed"],
)
def test_hutchinson_mistakes_get_their_hint(learner, hint):
    assert_hint(lesson10.hutchinson(learner), hint)


# --- all checks --------------------------------------------------------------------------------


def test_strict_mode_raises_on_a_mistake(monkeypatch):
    monkeypatch.setenv("NFCOURSE_STRICT", "1")
    with pytest.raises(CheckFailed):
        lesson10.fm_loss(loss_with(target="x0 - x1"))
    assert lesson10.euler_sampler(euler_with())


def test_checks_answer_within_a_second():
    for check, learner in [
        (lesson10.fm_loss, loss_with()),
        (lesson10.euler_sampler, euler_with()),
        (lesson10.hutchinson, hutchinson_with()),
    ]:
        start = time.perf_counter()
        check(learner)
        assert time.perf_counter() - start < 1.0
