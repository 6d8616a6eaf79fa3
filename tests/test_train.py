"""Tests of the training loops: maximum likelihood (fit, nll) and reverse KL."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import nfcourse as nf
from nfcourse import Affine, Flow
from nfcourse.train import (
    DivergenceWarning,
    History,
    NonFiniteLossError,
    fit,
    fit_reverse_kl,
    nll,
    optimizer_settings,
    reverse_kl,
)

# a correlated Gaussian: x = L z + mu
MU = torch.tensor([1.0, -2.0])
L_TRUE = torch.tensor([[1.0, 0.0], [1.2, 0.5]])


class LowerTriangular(nn.Module):
    """Test-local linear layer ``x = L z`` with ``L`` lower-triangular, positive diagonal.

    ``ladj = sum(log diag L)``. With an Affine layer after it, a flow can be any Gaussian.
    """

    dim = 2

    def __init__(self, dim: int = 2):
        super().__init__()
        self.dim = dim
        self.off = nn.Parameter(torch.zeros(dim, dim))
        self.log_diag = nn.Parameter(torch.zeros(dim))

    def matrix(self) -> Tensor:
        return self.off.tril(-1) + torch.diag(self.log_diag.exp())

    def forward(self, z):
        return z @ self.matrix().T, self.log_diag.sum().expand(z.shape[:-1])

    def inverse(self, x):
        z = torch.linalg.solve_triangular(self.matrix(), x.unsqueeze(-1), upper=False).squeeze(-1)
        return z, -self.log_diag.sum().expand(x.shape[:-1])


class _NaNGrad(torch.autograd.Function):
    """The identity, with a NaN gradient."""

    @staticmethod
    def forward(ctx, t):
        return t.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class NaNAfter(nn.Module):
    """Test-local layer: a learnable shift that goes wrong on its ``after + 1``-th call.

    ``mode="output"``: from then on it returns NaN. ``mode="grad"``: that one
    call returns finite values but NaN gradients, so the update poisons the
    parameters and the *next* loss is NaN.
    """

    dim = 2

    def __init__(self, after: int, mode: str = "output"):
        super().__init__()
        self.after, self.mode, self.calls = after, mode, 0
        self.shift = nn.Parameter(torch.zeros(2))

    def _out(self, x, sign):
        self.calls += 1
        shift = self.shift
        if self.mode == "grad" and self.calls == self.after + 1:
            shift = _NaNGrad.apply(shift)
        y = x + sign * shift
        if self.mode == "output" and self.calls > self.after:
            y = y * float("nan")
        return y, x.new_zeros(x.shape[:-1])

    def forward(self, z):
        return self._out(z, 1)

    def inverse(self, x):
        return self._out(x, -1)


def gaussian_data(n: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g) @ L_TRUE.T + MU


def true_log_prob(x: Tensor) -> Tensor:
    return torch.distributions.MultivariateNormal(MU, scale_tril=L_TRUE).log_prob(x)


def gaussian_flow() -> Flow:
    return Flow([LowerTriangular(), Affine(2)])


# ----------------------------------------------------------------------------
# fit


def test_fit_reaches_the_best_possible_nll():
    torch.manual_seed(0)
    train, val = gaussian_data(4000, 1), gaussian_data(4000, 2)
    entropy = 0.5 * math.log((2 * math.pi * math.e) ** 2 * torch.det(L_TRUE @ L_TRUE.T).item())
    flow = gaussian_flow()
    start = nll(flow, val)
    history = fit(flow, train, steps=400, lr=3e-2, val_data=val, progress=False, seed=0)
    best = -true_log_prob(val).mean().item()  # the true density on the same points
    assert start > entropy + 2.0
    # within 0.02 nats of the true model on the same held-out points
    assert history.final_val_nll < best + 0.02, (history.final_val_nll, best, entropy)
    assert abs(best - entropy) < 0.05  # the held-out points are a fair sample


def test_history_contents():
    torch.manual_seed(0)
    flow = gaussian_flow()
    start = nll(flow, gaussian_data(300, 2))
    h = fit(flow, gaussian_data(500, 1), steps=250, eval_every=100, val_data=gaussian_data(300, 2),
            lr=1e-2, progress=False, seed=0)
    assert h.final_val_nll < start - 1.0
    assert isinstance(h, History) and h.kind == "nll"
    assert h.step == list(range(1, 251)) and len(h.loss) == 250
    assert all(isinstance(v, float) and math.isfinite(v) for v in h.loss)
    assert h.val_step == [100, 200, 250] and len(h.val_nll) == len(h.val_seconds) == 3
    assert h.final_val_nll == h.val_nll[-1] == pytest.approx(nll(flow, gaussian_data(300, 2)))
    assert np.mean(h.loss[:20]) > np.mean(h.loss[-20:]) + 1.0  # it minimizes
    assert h.final_loss == pytest.approx(np.mean(h.loss[-100:]))
    assert 0 < h.val_seconds[-1] <= h.seconds
    assert "final_val_nll=" in repr(h) and len(repr(h)) < 200


def test_history_without_validation_says_so():
    torch.manual_seed(0)
    h = fit(gaussian_flow(), gaussian_data(100, 1), steps=5, progress=False)
    assert h.val_nll == [] and h.val_step == []
    with pytest.raises(ValueError, match="val_data"):
        _ = h.final_val_nll


def test_fit_is_reproducible_with_a_seed_and_keeps_the_mode():
    torch.manual_seed(0)
    data = gaussian_data(1000, 1)
    runs = []
    for _ in range(2):
        flow = gaussian_flow().eval()
        runs.append(fit(flow, data, steps=30, progress=False, seed=3).loss)
        assert not flow.training  # the mode it had before
    assert runs[0] == runs[1]
    gen = torch.Generator().manual_seed(3)
    assert fit(gaussian_flow(), data, steps=30, progress=False, generator=gen).loss == runs[0]


def test_fit_options_run():
    torch.manual_seed(0)
    data = gaussian_data(200, 1).double()
    flow = gaussian_flow().double()
    h = fit(flow, data.numpy(), steps=20, batch_size=1000, weight_decay=1e-3, clip_grad=1.0,
            schedule=None, progress=False)
    assert len(h.loss) == 20 and h.loss[-1] < h.loss[0]
    # NumPy float64 data is converted to a float32 flow's dtype
    flow32 = gaussian_flow()
    fit(flow32, data.numpy(), steps=3, progress=False)
    assert next(flow32.parameters()).dtype == torch.float32


def test_cosine_schedule():
    lrs = optimizer_settings("fit", 100, 0.1, "cosine", 0.0, None, False).learning_rates()
    assert lrs[0] == 0.1 and all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    assert 0 < lrs[-1] < 1e-3
    assert optimizer_settings("fit", 5, 0.1, None, 0.0, None, False).learning_rates() == [0.1] * 5
    with pytest.raises(ValueError, match="schedule"):
        fit(gaussian_flow(), gaussian_data(10, 1), steps=2, schedule="linear", progress=False)


@pytest.mark.parametrize(
    "after, mode, restored",
    [(37, "output", 30), (40, "output", 30), (3, "output", 0), (39, "grad", 30),
     (29, "grad", 20), (34, "grad", 30)],
)
def test_non_finite_loss_names_the_step_and_restores_parameters(after, mode, restored):
    torch.manual_seed(0)
    data = gaussian_data(300, 1)
    flow = Flow([NaNAfter(after, mode), Affine(2)])
    first_bad = after + 1 if mode == "output" else after + 2
    with pytest.raises(NonFiniteLossError, match=f"step {first_bad} of 100") as info:
        fit(flow, data, steps=100, lr=1e-2, schedule=None, progress=False, seed=0)
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert err.step == first_bad and math.isnan(err.value)
    assert err.restored_step == restored
    assert str(err).startswith("fit: ")
    assert "lower learning rate" in str(err) and "clip_grad" in str(err)
    assert f"after step {err.restored_step}" in str(err)
    assert err.history.step == list(range(1, first_bad))
    # the parameters equal those of a clean run of `restored_step` steps: finite
    assert 0 <= err.restored_step < err.step
    params = [p.detach().clone() for p in flow.parameters()]
    assert all(torch.isfinite(p).all() for p in params)
    clean = Flow([NaNAfter(10**9), Affine(2)])
    if err.restored_step:
        fit(clean, data, steps=err.restored_step, lr=1e-2, schedule=None, progress=False, seed=0)
    for p, q in zip(params, clean.parameters(), strict=True):
        torch.testing.assert_close(p, q.detach())


def test_absurd_learning_rate_is_caught():
    torch.manual_seed(0)
    flow = gaussian_flow()
    with pytest.raises(NonFiniteLossError, match=r"step \d+ of 200") as info:
        fit(flow, gaussian_data(300, 1), steps=200, lr=100.0, schedule=None, progress=False,
            seed=0)
    assert "lr=100.0" in str(info.value)
    assert all(torch.isfinite(p).all() for p in flow.parameters())


@pytest.mark.parametrize(
    "data, error, match",
    [
        (torch.randn(10, 3), ValueError, r"shape \(N, 2\).*\(10, 3\)"),
        (torch.randn(10), ValueError, r"data\[:, None\]"),
        (torch.tensor([[0.0, float("nan")]]), ValueError, "NaN"),
        ([[0.0, 1.0]], TypeError, "torch.Tensor"),
        (torch.zeros(0, 2), ValueError, "empty"),
        (torch.zeros(5, 2, dtype=torch.long), TypeError, "floating-point"),
    ],
    ids=["wrong-D", "1-D", "NaN", "list", "empty", "int"],
)
def test_fit_validates_data(data, error, match):
    with pytest.raises(error, match=match):
        fit(gaussian_flow(), data, steps=1, progress=False)


def test_fit_validates_arguments():
    data = gaussian_data(10, 1)
    for kwargs, match in [
        (dict(steps=0), "steps"),
        (dict(batch_size=-1), "batch_size"),
        (dict(steps=2.5), "steps"),
        (dict(lr=0), "lr"),
        (dict(clip_grad=-1), "clip_grad"),
        (dict(seed=0, generator=torch.Generator()), "not both"),
        (dict(val_data=torch.randn(4, 3)), "val_data"),
    ]:
        with pytest.raises(ValueError, match=match):
            fit(gaussian_flow(), data, progress=False, **kwargs)
    with pytest.raises(TypeError, match="log_prob"):
        fit(nn.Linear(2, 2), data, steps=1, progress=False)


def test_progress_bar_shows_and_can_be_disabled(capsys):
    torch.manual_seed(0)
    data = gaussian_data(100, 1)
    fit(gaussian_flow(), data, steps=25, val_data=data, eval_every=10, progress=True)
    err = capsys.readouterr().err
    assert "fit" in err and "25/25" in err and "val NLL" in err
    fit(gaussian_flow(), data, steps=25, progress=False)
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------
# nll


class Spy(nn.Module):
    """Wraps a flow and records the mode and grad state its log_prob sees."""

    def __init__(self, flow):
        super().__init__()
        self.flow, self.dim, self.seen = flow, flow.dim, []

    def log_prob(self, x):
        self.seen.append((self.training, torch.is_grad_enabled(), x.shape[0]))
        return self.flow.log_prob(x)


def test_nll_matches_a_direct_computation():
    torch.manual_seed(0)
    flow = Flow([LowerTriangular(), Affine(2)]).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = gaussian_data(1000, 5).double()
    direct = -flow.log_prob(x).mean().item()
    spy = Spy(flow)
    assert nll(spy, x, batch_size=300) == pytest.approx(direct, rel=1e-12)
    assert [s[2] for s in spy.seen] == [300, 300, 300, 100]
    assert all(not training and not grad for training, grad, _ in spy.seen)
    assert spy.training  # the mode is restored
    assert nll(flow, x.numpy()) == pytest.approx(direct, rel=1e-12)


# ----------------------------------------------------------------------------
# reverse KL


def test_reverse_kl_matches_the_closed_form():
    # q = N(0, I) (an identity flow), p = N(m, I) given unnormalized: KL(q || p) = |m|^2 / 2
    torch.manual_seed(0)
    m = torch.tensor([1.0, -0.5])
    flow = Flow([Affine(2)])
    est, se = reverse_kl(flow, lambda x: -0.5 * (x - m).pow(2).sum(-1), n=20000,
                         log_normalizer=math.log(2 * math.pi), seed=0)
    assert abs(est - 0.5 * m.pow(2).sum().item()) < 4 * se and 0 < se < 0.02
    # an object with log_prob (normalized: log Z = 0)
    target = torch.distributions.MultivariateNormal(m, torch.eye(2))
    est2, se2 = reverse_kl(flow, target, n=20000, seed=0)
    assert est2 == pytest.approx(est, abs=1e-4)


@pytest.mark.parametrize("anneal_steps", [0, 100])
def test_fit_reverse_kl_reaches_zero_kl(anneal_steps):
    torch.manual_seed(0)
    mu, sigma = torch.tensor([1.5, -1.0]), torch.tensor([0.5, 2.0])

    def log_density(x):  # unnormalized: log Z = sum(log(sigma sqrt(2 pi)))
        return -0.5 * ((x - mu) / sigma).pow(2).sum(-1)

    log_z = (sigma * math.sqrt(2 * math.pi)).log().sum().item()
    flow = Flow([Affine(2)])
    kl0, _ = reverse_kl(flow, log_density, n=4000, log_normalizer=log_z, seed=1)
    h = fit_reverse_kl(flow, log_density, steps=600, lr=3e-2, anneal_steps=anneal_steps,
                       progress=False, seed=0)
    kl, se = reverse_kl(flow, log_density, n=4000, log_normalizer=log_z, seed=1)
    assert kl0 > 1.0
    assert kl < 5e-3 and kl > -4 * se - 1e-6
    assert h.kind == "reverse_kl" and len(h.loss) == 600
    # the recorded objective is KL - log Z: it goes below zero here, and approaches -log Z
    assert np.mean(h.loss[-50:]) == pytest.approx(-log_z, abs=0.05)


def test_annealing_tempers_the_target_but_records_the_true_objective():
    # A narrow target N(0, 0.1^2 I) and a flow at N(0, I). At beta = 1 the first step must
    # shrink the flow (log_scale goes down); at beta_start = 0.001 the target is almost flat,
    # the entropy term wins, and the first step widens it. Adam's first step moves every
    # parameter by lr against the sign of its gradient, so the direction is all we read.
    def log_density(x):
        return -0.5 * (x / 0.1).pow(2).sum(-1)

    steps = {}
    losses = {}
    for anneal in (0, 10):
        flow = Flow([Affine(2)])
        h = fit_reverse_kl(flow, log_density, steps=1, lr=1e-2, schedule=None,
                           anneal_steps=anneal, beta_start=0.001, progress=False, seed=0)
        steps[anneal] = flow.transform.layers[0].log_scale.detach().clone()
        losses[anneal] = h.loss[0]
    assert (steps[0] < 0).all()  # beta = 1: shrink towards the narrow target
    assert (steps[10] > 0).all()  # beta = 0.001: spread out first
    # the recorded loss is E_q[log q - log p~] at beta = 1 either way (same samples)
    assert losses[10] == pytest.approx(losses[0], rel=1e-6)


def test_fit_reverse_kl_errors():
    flow = Flow([Affine(2)])
    with pytest.raises(ValueError, match=r"shape \(16,\).*got \(16, 2\)"):
        fit_reverse_kl(flow, lambda x: -x.pow(2), steps=1, n_samples=16, progress=False)
    with pytest.raises(TypeError, match="callable"):
        fit_reverse_kl(flow, 3.0, steps=1, progress=False)
    with pytest.raises(NonFiniteLossError, match="step 1 of 5.*finite wall"):
        fit_reverse_kl(flow, lambda x: torch.where(x[:, 0] > 0, 0.0, -math.inf), steps=5,
                       progress=False)
    assert all(torch.isfinite(p).all() for p in flow.parameters())


# --- runs that diverge: one clear message, the best parameters back -------------------------------


def _moons_fit(flow, lr: float, steps: int = 60):
    data = nf.datasets.moons().sample(500, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            history, error = fit(flow, data, steps=steps, lr=lr, progress=False, seed=0), None
        except NonFiniteLossError as err:
            history, error = None, err
    return data, history, error, [w for w in caught if issubclass(w.category, DivergenceWarning)]


def test_an_exploding_loss_warns_and_the_run_gives_back_its_best_parameters():
    torch.manual_seed(0)
    flow = nf.realnvp(2, 3, (32,))
    start = [p.detach().clone() for p in flow.parameters()]
    data, history, error, warned = _moons_fit(flow, lr=30.0)
    assert error is None and max(history.loss) > 1e20  # finite, but exploded
    assert len(warned) == 2
    assert "exploded" in str(warned[0].message) and "lr=30.0" in str(warned[0].message)
    assert "restored to their values after step 0" in str(warned[1].message)
    assert history.restored_step == 0  # the loss was never lower than at the start
    for p, q in zip(flow.parameters(), start, strict=True):
        torch.testing.assert_close(p.detach(), q)
    assert nll(flow, data) < 10


def test_a_healthy_run_neither_warns_nor_restores():
    torch.manual_seed(0)
    _, history, error, warned = _moons_fit(nf.realnvp(2, 3, (32,)), lr=3e-3)
    assert error is None and not warned and history.restored_step is None


@pytest.mark.parametrize("builder", [nf.planar_flow, nf.radial_flow])
@pytest.mark.parametrize("lr", [3.0, 30.0, 300.0])
def test_planar_and_radial_fits_never_die_in_the_invertibility_check(builder, lr):
    """The layers keep themselves invertible, so a diverging fit is reported as a divergence
    (with advice a learner can follow), and the flow can still score data afterwards."""
    torch.manual_seed(0)
    flow = builder(2, layers=8)
    data, history, error, warned = _moons_fit(flow, lr=lr)
    if error is not None:
        assert f"lr={lr}" in str(error) and "where the loss was lowest" in str(error)
    assert all(torch.isfinite(p).all() for p in flow.parameters())
    assert math.isfinite(nll(flow, data))
