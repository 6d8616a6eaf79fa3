"""Lesson 09's checks: the reference passes, a stub is "not done", each mistake gets its hint."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nfcourse as nf
from nfcourse import check
from nfcourse.course.check import CheckFailed
from nfcourse.layers.conditional import ConditionalAffineCoupling as PackageCoupling


class Coupling(nn.Module):
    """The notebook's solution of exercise 9.1; ``bug`` plants one typical mistake."""

    bug: str | None = None

    def __init__(self, mask, context_dim, hidden=(64, 64)):
        super().__init__()
        self.register_buffer("mask", torch.as_tensor(mask).bool())
        d_a = int(self.mask.sum())
        d_in = d_a if self.bug == "context ignored" else d_a + context_dim
        if self.bug == "moving half read":
            d_in = self.mask.numel() - d_a + context_dim
        self.net = nf.mlp(d_in, 2 * (self.mask.numel() - d_a), hidden)

    def shift_log_scale(self, t_a, context, inverse=False):
        if self.bug == "context ignored":
            h = self.net(t_a)
        elif self.bug == "not broadcast":
            h = self.net(torch.cat([t_a, context], dim=-1))
        else:
            context = context.expand(*t_a.shape[:-1], -1)
            if self.bug == "context detached":
                context = context.detach()
            if self.bug == "inverse ignores context" and inverse:
                context = torch.zeros_like(context)
            parts = [context, t_a] if self.bug == "order" and inverse else [t_a, context]
            h = self.net(torch.cat(parts, dim=-1))
        shift, raw = h.chunk(2, dim=-1)
        return shift, 2.0 * torch.tanh(raw / 2.0)

    def forward(self, z, context):
        z_a, z_b = z[..., self.mask], z[..., ~self.mask]
        cond = z_b if self.bug == "moving half read" else z_a
        shift, log_scale = self.shift_log_scale(cond, context)
        x = torch.empty_like(z)
        x[..., self.mask] = z_a
        x[..., ~self.mask] = z_b * log_scale.exp() + shift
        ladj = log_scale.sum(-1)
        if self.bug == "forward sign":
            ladj = -ladj
        elif self.bug == "mean":
            ladj = log_scale.mean(-1)
        elif self.bug == "no sum":
            ladj = log_scale
        elif self.bug == "batch sum":
            ladj = log_scale.sum()
        if self.bug == "context returned":
            x = torch.cat([x, context.expand(*x.shape[:-1], -1)], dim=-1)
        return x, ladj

    def inverse(self, x, context):
        x_a, x_b = x[..., self.mask], x[..., ~self.mask]
        shift, log_scale = self.shift_log_scale(x_a, context, inverse=True)
        z = torch.empty_like(x)
        z[..., self.mask] = x_a
        z[..., ~self.mask] = (x_b - shift) * (-log_scale).exp()
        ladj = log_scale.sum(-1) if self.bug == "inverse sign" else -log_scale.sum(-1)
        return z, ladj


def with_bug(bug: str) -> type:
    return type(f"Coupling_{bug.replace(' ', '_')}", (Coupling,), {"bug": bug})


class NoContextArgument(Coupling):
    """Forgot the context argument altogether (lesson 04's signature)."""

    def forward(self, z):
        return Coupling.forward(self, z, torch.zeros(*z.shape[:-1], 2, dtype=z.dtype))


class ConditionerNoGrad(Coupling):
    def shift_log_scale(self, t_a, context, inverse=False):
        with torch.no_grad():
            return Coupling.shift_log_scale(self, t_a, context, inverse)


class DetachedWeights(Coupling):
    def shift_log_scale(self, t_a, context, inverse=False):
        context = context.expand(*t_a.shape[:-1], -1)
        shift, raw = self.net(torch.cat([t_a, context], dim=-1)).detach().chunk(2, dim=-1)
        return shift, 2.0 * torch.tanh(raw / 2.0)


class Stub(Coupling):
    def forward(self, z, context):
        raise NotImplementedError("Exercise 9.1: write forward and inverse")


@pytest.fixture(autouse=True)
def lenient(monkeypatch):
    monkeypatch.delenv("NFCOURSE_STRICT", raising=False)


def test_reference_passes_and_leaves_the_global_rng_alone():
    before = torch.random.get_rng_state()
    result = check.conditional_coupling(Coupling)
    assert result, result.line
    assert torch.equal(torch.random.get_rng_state(), before)


def test_the_package_layer_passes_too():
    assert check.conditional_coupling(PackageCoupling)


def test_stub_is_not_done():
    assert check.conditional_coupling(Stub).status == "not done"


@pytest.mark.parametrize(
    "cls, message, hint",
    [
        (with_bug("context ignored"), "ignores its context", "torch.cat([z_a, context], -1)"),
        (
            with_bug("context returned"),
            "the context came out with the points",
            "not transformed and not returned",
        ),
        (with_bug("moving half read"), "not diagonal", "must see only z_a"),
        (with_bug("forward sign"), "wrong sign", "+sum(s)"),
        (with_bug("inverse sign"), "wrong sign", "-sum(s)"),
        (with_bug("mean"), "divided by", "use sum, not mean"),
        (with_bug("no sum"), "has shape", "sum the log-scales over the transformed coordinates"),
        (with_bug("batch sum"), "has shape", "reduced over the batch"),
        (
            ConditionerNoGrad,
            "no gradient reaches the conditioner's weights",
            "`torch.no_grad()` in shift_log_scale",
        ),
        (
            DetachedWeights,
            "no gradient reaches the conditioner's weights",
            "`.detach()` in shift_log_scale",
        ),
        (with_bug("not broadcast"), "serves the whole batch", "not broadcast over the batch"),
        (with_bug("context detached"), "back to the context", "`.detach()` in shift_log_scale"),
        (
            with_bug("inverse ignores context"),
            "inverse gives the same output for two different",
            "read the context in the inverse exactly as in forward",
        ),
        (with_bug("order"), "although the inverse reads the context", "in the same order"),
        (NoContextArgument, "raised TypeError", "takes the context as a second argument"),
    ],
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
def test_mistakes_get_their_hint(cls, message, hint):
    result = check.conditional_coupling(cls)
    assert result.status == "failed", result.line
    assert message in result.message, result.line
    assert hint in result.hint, result.line


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("NFCOURSE_STRICT", "1")
    assert check.conditional_coupling(Coupling)
    with pytest.raises(CheckFailed, match="ignores its context"):
        check.conditional_coupling(with_bug("context ignored"))
    with pytest.raises(CheckFailed, match="not done"):
        check.conditional_coupling(Stub)


# ----------------------------------------------------------------------------
# Exercise 9.2


def credibility(log_q_samples, log_q_true):
    """The notebook's solution of exercise 9.2."""
    return (log_q_samples > log_q_true).double().mean(0)


def test_credibility_reference_passes_and_a_stub_is_not_done():
    from nfcourse.data.simulators import sample_credibility

    assert check.credibility(credibility)
    assert check.credibility(sample_credibility)
    assert check.credibility(lambda s, t: (s.exp() > t.exp()).float().mean(0))  # same ranks

    def stub(s, t):
        raise NotImplementedError("Exercise 9.2: the credibility")

    assert check.credibility(stub).status == "not done"


@pytest.mark.parametrize(
    "fn, message, hint",
    [
        (lambda s, t: (s < t).double().mean(0), "1 minus the credibility", "HIGHER"),
        (lambda s, t: (s > t).double().sum(0), "counts", "divide by the number of samples"),
        (
            lambda s, t: (s > t).double().mean(1),
            "instead of over the samples",
            "average over the samples",
        ),
        (lambda s, t: (s > t).double().mean(), "returned shape", "one credibility per test pair"),
        (
            lambda s, t: (s > t[:, None]).double().mean(0),
            "broadcast along the wrong dimension",
            "not with log_q_true[:, None]",
        ),
        (
            lambda s, t: (s >= t.mean()).double().mean(0),
            "differs from the fraction",
            "(log_q_samples > log_q_true)",
        ),
        (lambda s, t: [0.5] * t.shape[0], "not a torch.Tensor", "one per test pair"),
    ],
    ids=["flipped", "counts", "wrong axis", "one number", "broadcast", "other", "list"],
)
def test_credibility_mistakes_get_their_hint(fn, message, hint):
    result = check.credibility(fn)
    assert result.status == "failed", result.line
    assert message in result.message and hint in result.hint, result.line
