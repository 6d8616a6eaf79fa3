"""Lesson 04's checks: the reference passes, a stub is "not done", mistakes get their hint."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nfcourse as nf
from nfcourse import check
from nfcourse.course.check import CheckFailed


class Coupling(nn.Module):
    """The notebook's solution of exercise 4.1; ``bug`` plants one typical mistake."""

    bug: str | None = None

    def __init__(self, mask, hidden=(64, 64)):
        super().__init__()
        self.register_buffer("mask", torch.as_tensor(mask).bool())
        d_a = int(self.mask.sum())
        self.net = nf.mlp(d_a, 2 * (self.mask.numel() - d_a), hidden)

    def shift_log_scale(self, t_a):
        shift, raw = self.net(t_a).chunk(2, dim=-1)
        return shift, 3.0 * torch.tanh(raw / 3.0)

    def forward(self, z):
        a, b = (~self.mask, self.mask) if self.bug == "wrong half" else (self.mask, ~self.mask)
        z_a, z_b = z[..., a], z[..., b]
        cond = z_b if self.bug == "conditioner sees z_b" else z_a
        shift, log_scale = self.shift_log_scale(cond)
        x = torch.empty_like(z)
        x[..., a] = z_a
        x[..., b] = z_b * log_scale.exp() + shift
        ladj = log_scale.sum(-1)
        if self.bug == "forward sign":
            ladj = -ladj
        elif self.bug == "mean":
            ladj = log_scale.mean(-1)
        elif self.bug == "ladj shape":
            ladj = log_scale
        elif self.bug == "batch sum":
            ladj = log_scale.sum()
        elif self.bug == "zero ladj":
            ladj = torch.zeros_like(ladj)
        return x, ladj

    def inverse(self, x):
        x_a, x_b = x[..., self.mask], x[..., ~self.mask]
        shift, log_scale = self.shift_log_scale(x_a)
        z = torch.empty_like(x)
        z[..., self.mask] = x_a
        if self.bug == "exp(+s)":
            z[..., ~self.mask] = (x_b - shift) * log_scale.exp()
        elif self.bug == "shift after scale":
            z[..., ~self.mask] = x_b * (-log_scale).exp() - shift
        else:
            z[..., ~self.mask] = (x_b - shift) * (-log_scale).exp()
        ladj = log_scale.sum(-1) if self.bug == "inverse sign" else -log_scale.sum(-1)
        return z, ladj


def with_bug(bug: str) -> type:
    return type(f"Coupling_{bug}", (Coupling,), {"bug": bug})


class FirstHalf(Coupling):
    """Splits into the first and second half of the coordinates, ignoring the mask."""

    def forward(self, z):
        d_a = int(self.mask.sum())
        shift, log_scale = self.shift_log_scale(z[..., :d_a])
        x_b = z[..., d_a:] * log_scale.exp() + shift
        return torch.cat([z[..., :d_a], x_b], -1), log_scale.sum(-1)


class InPlace(Coupling):
    def forward(self, z):
        shift, log_scale = self.shift_log_scale(z[..., self.mask])
        z[..., ~self.mask] = z[..., ~self.mask] * log_scale.exp() + shift
        return z, log_scale.sum(-1)


def under_no_grad(method: str) -> type:
    """The solution with ``method`` run under torch.no_grad(): right values, no gradients."""
    right = getattr(Coupling, method)

    def wrapped(self, t):
        with torch.no_grad():
            return right(self, t)

    return type(f"NoGrad_{method}", (Coupling,), {method: wrapped})


ConditionerNoGrad = under_no_grad("shift_log_scale")  # the conditioner's weights never train
InverseNoGrad = under_no_grad("inverse")  # a flow's log_prob cannot train the layer


class DetachedInput(Coupling):
    """Right values, but the conditioner sees a detached z_a: autograd's Jacobian is wrong."""

    def forward(self, z):
        z_a, z_b = z[..., self.mask], z[..., ~self.mask]
        shift, log_scale = self.shift_log_scale(z_a.detach())
        x = torch.empty_like(z)
        x[..., self.mask] = z_a
        x[..., ~self.mask] = z_b * log_scale.exp() + shift
        return x, log_scale.sum(-1)


class Misspelt(Coupling):
    forward = nn.Module.forward

    def forwards(self, z):
        return Coupling.forward(self, z)


class Stub(Coupling):
    def forward(self, z):
        raise NotImplementedError("Exercise 4.1: write forward and inverse")


@pytest.fixture(autouse=True)
def lenient(monkeypatch):
    monkeypatch.delenv("NFCOURSE_STRICT", raising=False)


def test_reference_coupling_passes_and_leaves_the_global_rng_alone():
    before = torch.random.get_rng_state()
    result = check.affine_coupling(Coupling)
    assert result, result.line
    assert torch.equal(torch.random.get_rng_state(), before)


def test_nfcourse_coupling_passes_too():
    assert check.affine_coupling(nf.AffineCoupling)


def test_stub_is_not_done():
    assert check.affine_coupling(Stub).status == "not done"


@pytest.mark.parametrize(
    "cls, hint",
    [
        (with_bug("wrong half"), "wrong half"),
        (FirstHalf, "not with the first and second half"),
        (with_bug("forward sign"), "wrong sign"),
        (with_bug("inverse sign"), "wrong sign"),
        (with_bug("mean"), "use sum, not mean"),
        (with_bug("ladj shape"), "sum the log-scales over the transformed coordinates"),
        (with_bug("batch sum"), "reduced over the batch"),
        (with_bug("zero ladj"), "not zeros"),
        (with_bug("exp(+s)"), "exp(-log_scale)"),
        (with_bug("shift after scale"), "reverse order"),
        (with_bug("conditioner sees z_b"), "the conditioner must see only z_a"),
        (InPlace, "in place"),
        (ConditionerNoGrad, "`torch.no_grad()` in shift_log_scale"),
        (DetachedInput, "`.detach()` in forward"),
        (InverseNoGrad, "`torch.no_grad()` in inverse"),
        (Misspelt, "check the spelling of your method names"),
    ],
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
def test_coupling_mistakes_get_their_hint(cls, hint):
    result = check.affine_coupling(cls)
    assert result.status == "failed"
    assert hint in result.message + " " + result.hint, result.line


def test_coupling_mistakes_name_the_message():
    result = check.affine_coupling(with_bug("exp(+s)"))
    assert "exp(+s) instead of exp(-s)" in result.message
    result = check.affine_coupling(with_bug("conditioner sees z_b"))
    assert "not diagonal" in result.message


def test_coupling_gradients_must_reach_the_weights_and_the_input():
    result = check.affine_coupling(ConditionerNoGrad)
    assert "in forward, no gradient reaches the conditioner's weights" in result.message
    result = check.affine_coupling(DetachedInput)
    assert "no dependence of the transformed coordinates on z_a" in result.message, result.line
    result = check.affine_coupling(InverseNoGrad)
    assert "in inverse, no gradient reaches" in result.message, result.line


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("NFCOURSE_STRICT", "1")
    assert check.affine_coupling(Coupling)
    with pytest.raises(CheckFailed, match="wrong sign"):
        check.affine_coupling(with_bug("forward sign"))
    with pytest.raises(CheckFailed, match="not done"):
        check.affine_coupling(Stub)
    with pytest.raises(CheckFailed, match="same mask"):
        check.make_realnvp(same_mask)


# ----------------------------------------------------------------------------
# Exercise 4.2


def make_realnvp(dim, layers, hidden=(64, 64)):
    return nf.Flow([nf.AffineCoupling(nf.alternating_mask(dim, i % 2), hidden)
                    for i in range(layers)])


def same_mask(dim, layers, hidden=(64, 64)):
    return nf.Flow([nf.AffineCoupling(nf.alternating_mask(dim, 0), hidden) for _ in range(layers)])


def one_too_few(dim, layers, hidden=(64, 64)):
    return make_realnvp(dim, layers - 1, hidden) if layers > 1 else make_realnvp(dim, 2, hidden)


def no_hidden(dim, layers, hidden=(64, 64)):
    return make_realnvp(dim, layers)


def not_a_flow(dim, layers, hidden=(64, 64)):
    return [nf.AffineCoupling(nf.alternating_mask(dim, i % 2), hidden) for i in range(layers)]


def with_permutations(dim, layers, hidden=(64, 64)):
    stack = []
    for i in range(layers):
        stack += [nf.Reverse(dim)] if i else []
        stack.append(nf.AffineCoupling(nf.alternating_mask(dim, 0), hidden))
    return nf.Flow(stack)


def stub(dim, layers, hidden=(64, 64)):
    raise NotImplementedError("Exercise 4.2: build the stack")


def shared_pair(dim, layers, hidden=(64, 64)):
    """Two layer objects repeated: masks alternate, but the weights are shared."""
    pair = [nf.AffineCoupling(nf.alternating_mask(dim, i), hidden) for i in (0, 1)]
    return nf.Flow([pair[i % 2] for i in range(layers)])


def shared_net(dim, layers, hidden=(64, 64)):
    """Distinct layers, one conditioner network for the layers of each mask."""
    stack = [nf.AffineCoupling(nf.alternating_mask(dim, i % 2), hidden) for i in range(layers)]
    for i in range(2, layers):
        stack[i].net = stack[i - 2].net
    return nf.Flow(stack)


def own_class(dim, layers, hidden=(64, 64)):
    """The learner's own AffineCoupling of exercise 4.1 (which records no dim): passes dim."""
    masks = [nf.alternating_mask(dim, i % 2) for i in range(layers)]
    return nf.Flow([Coupling(m, hidden) for m in masks], dim=dim)


def own_class_without_dim(dim, layers, hidden=(64, 64)):
    return nf.Flow([Coupling(nf.alternating_mask(dim, i % 2), hidden) for i in range(layers)])


def own_class_same_mask(dim, layers, hidden=(64, 64)):
    masks = [nf.alternating_mask(dim, 0) for _ in range(layers)]
    return nf.Flow([Coupling(m, hidden) for m in masks], dim=dim)


def test_reference_realnvp_passes():
    assert check.make_realnvp(make_realnvp), "reference fails"
    assert check.make_realnvp(nf.realnvp)


def test_realnvp_of_the_learners_own_coupling_class_passes():
    result = check.make_realnvp(own_class)
    assert result, result.line


def test_realnvp_stub_is_not_done():
    assert check.make_realnvp(stub).status == "not done"


def test_realnvp_of_an_unfinished_coupling_class_says_which_exercise():
    def own_stub(dim, layers, hidden=(64, 64)):
        masks = [nf.alternating_mask(dim, i % 2) for i in range(layers)]
        return nf.Flow([Stub(m, hidden) for m in masks], dim=dim)

    result = check.make_realnvp(own_stub)
    assert result.status == "not done" and "Exercise 4.1, which is not done" in result.message


@pytest.mark.parametrize(
    "fn, hint",
    [
        (same_mask, "same mask"),
        (one_too_few, "exactly `layers` couplings"),
        (no_hidden, "pass `hidden` on"),
        (not_a_flow, "nf.Flow("),
        (with_permutations, "layers other than nf.AffineCoupling"),
        (shared_pair, "the same layer object appears twice"),
        (shared_net, "share parameters"),
        (own_class_without_dim, "nf.Flow([...], dim=dim)"),
        (own_class_same_mask, "same mask"),
    ],
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
def test_realnvp_mistakes_get_their_hint(fn, hint):
    result = check.make_realnvp(fn)
    assert result.status == "failed"
    assert hint in result.message + " " + result.hint, result.line
