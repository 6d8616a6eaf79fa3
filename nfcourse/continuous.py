"""Continuous-time flows: a velocity field integrated by an ODE, trained by flow matching.

A continuous normalizing flow moves every point along the ODE

    dx/dt = v(x, t),        t from 0 to 1,

with a neural network ``v`` (the *velocity field*). It is the limit of a stack of K layers
``x_{k+1} = x_k + h v(x_k, t_k)`` (``h = 1/K``) as K grows: each layer is a small step.

**Direction and time.** Time runs from ``t = 0``, the base ``z ~ N(0, I_D)``, to ``t = 1``,
the data. Sampling integrates *forward*, 0 -> 1: the generative direction, as a layer's
``forward``. Scoring a data point integrates *backward*, 1 -> 0: the normalizing direction,
as a layer's ``inverse``.

**The instantaneous change of variables** (Chen et al. 2018). Along a solution ``x(t)``,

    d log p_t(x(t)) / dt = -tr(dv/dx (x(t), t)) = -div v(x(t), t),

the limit of the discrete ``log|det(I + h J)| = h tr J + O(h^2)``. Integrated from 0 to 1,

    log p_1(x(1)) = log p_0(x(0)) - int_0^1 div v(x(t), t) dt.

To score ``x``, :func:`log_prob` solves backwards from ``x(1) = x`` to ``t = 0`` the
augmented ODE of ``(x(t), a(t))`` with ``da/dt = +div v(x(t), t)`` and ``a(1) = 0``, so that
``a(0) = -int_0^1 div v dt`` and

    log p_1(x) = log p_0(x(0)) + a(0).

(A plus sign in the ODE for ``a`` and a plus sign in the sum: the minus sign of the formula
is in the direction of time.) A velocity field that spreads points out (``div v > 0``)
lowers the density, as a layer with ``ladj > 0`` does.

**The divergence.** ``div v = tr(dv/dx)`` exactly, with one vector-Jacobian product per
coordinate (D of them): cheap in 2-D. Or by Hutchinson's estimator (Hutchinson 1989;
FFJORD, Grathwohl et al. 2019): for a probe ``eps`` with ``E[eps eps^T] = I``,
``tr J = E[eps^T J eps]``, one vector-Jacobian product whatever D. With ``S = (J + J^T)/2``
its variance is ``2 ||S||_F^2`` for a Gaussian probe and ``2 sum_{i != j} S_ij^2`` (the
diagonal left out) for a Rademacher probe (entries +-1), never more. As in FFJORD, one probe
per point is drawn for a whole ODE solve, which keeps the ODE deterministic for the
adaptive solver; the estimate of the integral stays unbiased.

**Flow matching with the straight-line path** (Lipman et al. 2023, with ``sigma_min = 0``;
the rectified flow of Liu et al. 2023; Albergo and Vanden-Eijnden 2023). Draw ``x0 ~ N(0, I)``,
``x1`` from the data and ``t ~ U(0, 1)``, each example its own; the point
``x_t = (1 - t) x0 + t x1`` moves with the *conditional* velocity ``dx_t/dt = x1 - x0``.
Regress the network on it:

    L(theta) = E_{t, x0, x1} || v_theta(x_t, t) - (x1 - x0) ||^2

(the squared norm: a sum over the D coordinates, a mean over examples). No ODE is solved
during training. The minimizer is the *marginal* field ``v*(x, t) = E[x1 - x0 | x_t = x]``,
whose flow carries ``N(0, I)`` at ``t = 0`` to the data at ``t = 1`` (Lipman et al. 2023,
Theorems 1 and 2). The loss never reaches 0: at ``v*`` it is the conditional variance
``E||x1 - x0 - v*(x_t, t)||^2``; for Gaussian data ``N(m, s^2 I_D)`` it is exactly
``D pi s / 2`` (:func:`gaussian_target_field` gives that ``v*``).

**Solvers.** Adaptive solves use torchdiffeq's ``dopri5`` (Dormand-Prince 5(4)): a step is
accepted when the estimated local error, each coordinate divided by ``atol + rtol * |y|``,
has a root mean square over the state of at most 1, so the number of function evaluations
(NFE) adapts to how curved the trajectories are. Fixed-step solves (``euler``, ``midpoint``,
``rk4``) take exactly ``steps`` equal steps (NFE = steps, 2 steps, 4 steps). Every solve
here returns its NFE.

References:
    Chen, Rubanova, Bettencourt, Duvenaud (2018), "Neural Ordinary Differential
    Equations", arXiv:1806.07366
    Grathwohl, Chen, Bettencourt, Sutskever, Duvenaud (2019), "FFJORD: Free-form Continuous
    Dynamics for Scalable Reversible Generative Models", arXiv:1810.01367
    Hutchinson (1989), "A stochastic estimator of the trace of the influence matrix for
    Laplacian smoothing splines", Communications in Statistics 18(3)
    Lipman, Chen, Ben-Hamu, Nickel, Le (2023), "Flow Matching for Generative Modeling",
    arXiv:2210.02747
    Liu, Gong, Liu (2023), "Flow Straight and Fast: Learning to Generate and Transfer Data
    with Rectified Flow", arXiv:2209.03003
    Albergo, Vanden-Eijnden (2023), "Building Normalizing Flows with Stochastic
    Interpolants", arXiv:2209.15571
    Tong et al. (2024), "Improving and generalizing flow-based generative models with
    minibatch optimal transport", arXiv:2302.00482 (the torchcfm library)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Generator, Tensor, nn

from .evaluate import as_data
from .flow import StandardNormal
from .nets import mlp
from .train import History, minimize, optimizer_settings
from .validate import (
    allocation,
    as_model_dtype,
    check_count,
    check_dim,
    check_finite,
    check_generator,
    check_int,
    check_number,
    check_points,
    make_generator,
    unknown_name,
)

__all__ = [
    "ADAPTIVE",
    "FIXED",
    "ContinuousFlow",
    "StepUnderflowError",
    "VelocityField",
    "divergence",
    "fit_flow_matching",
    "flow_matching_loss",
    "gaussian_target_field",
    "log_prob",
    "solve",
    "trajectories",
]

ADAPTIVE = ("dopri5",)
FIXED = {"euler": 1, "midpoint": 2, "rk4": 4}  # solver -> function evaluations per step
RTOL = ATOL = 1e-5  # the default tolerances of adaptive solves
DIVERGENCES = ("exact", "hutchinson")
PAIRINGS = ("independent", "ot")  # of noise and data in a flow-matching batch
PROBES = ("rademacher", "gaussian")

Field = Callable[[Tensor, Tensor], Tensor]


class StepUnderflowError(RuntimeError):
    """An adaptive solve whose step size fell to 0: the field is too steep to follow."""


# --- the velocity field ----------------------------------------------------------------------


def _time_column(t: Tensor | float, x: Tensor) -> Tensor:
    """``t`` as a column ``(*, 1)`` matching the points ``x`` of shape ``(*, D)``."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.dim() == x.dim():  # (*, 1)
        return t.expand(*x.shape[:-1], 1)
    return t.reshape(*t.shape, 1).expand(*x.shape[:-1], 1)


class VelocityField(nn.Module):
    """A time-dependent velocity field ``v(x, t)``: an MLP on ``(x, t)``.

    ``x`` of shape ``(*, D)``; ``t`` a number, a 0-d tensor (one time for all points), or a
    tensor of shape ``(*)`` or ``(*, 1)`` (one time per point). Returns ``(*, D)``.
    A smooth activation (SiLU by default) makes a smooth field, whose trajectories an
    adaptive solver follows with few steps and whose divergence is continuous (with ReLU,
    ``dv/dx`` jumps at every kink).

    With ``time_features = 0`` the time is simply one more input. With ``K > 0`` the network
    sees ``t`` together with ``sin(pi k t)`` and ``cos(pi k t)``, ``k = 1..K`` (Fourier
    features of the time, as the sinusoidal embeddings of Vaswani et al. 2017 and Tancik et
    al. 2020): a field that changes quickly with ``t``, as it must near ``t = 1`` for thin or
    sharp data, is then easier to fit.
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64, 64),
        activation: type[nn.Module] = nn.SiLU,
        *,
        time_features: int = 0,
    ):
        super().__init__()
        self.dim = check_dim(dim, "VelocityField")
        k = check_int(time_features, "time_features", "VelocityField", smallest=0)
        self.time_features = k
        self.register_buffer("frequencies", math.pi * torch.arange(1, k + 1).float())
        self.net = mlp(self.dim + 1 + 2 * k, self.dim, hidden, activation)

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        t = _time_column(t, x)
        if self.time_features:
            angles = t * self.frequencies.to(x.dtype)
            t = torch.cat([t, angles.sin(), angles.cos()], dim=-1)
        return self.net(torch.cat([x, t], dim=-1))


def gaussian_target_field(mean: Tensor, std: float) -> Field:
    """The exact marginal field ``v*`` of the straight-line path for data ``N(mean, std^2 I)``.

    With ``x0 ~ N(0, I)``, ``x1 ~ N(m, s^2 I)`` and ``x_t = (1 - t) x0 + t x1``,
    ``x_t ~ N(t m, sigma_t^2 I)`` with ``sigma_t^2 = (1 - t)^2 + t^2 s^2``, and the Gaussian
    conditional mean gives

        v*(x, t) = E[x1 - x0 | x_t = x] = m + (t s^2 - (1 - t)) / sigma_t^2 (x - t m).

    Its flow maps ``N(0, I)`` at ``t = 0`` to ``N(m, s^2 I)`` at ``t = 1``; the flow-matching
    loss at ``v*`` is ``D pi s / 2`` (the integral over ``t`` of the conditional variance
    ``D s^2 / sigma_t^2``). A known answer for tests and for the lesson.
    """
    std = check_number(std, "std", "gaussian_target_field", positive=True)
    mean = torch.as_tensor(mean)

    def field(x: Tensor, t: Tensor | float) -> Tensor:
        t = _time_column(t, x)
        m = mean.to(x)
        var = (1 - t) ** 2 + t**2 * std**2
        return m + (t * std**2 - (1 - t)) / var * (x - t * m)

    return field


# --- the divergence -----------------------------------------------------------------------


def _probe(x: Tensor, probe: str, generator: Generator | None) -> Tensor:
    """One probe per point: Rademacher (+-1) or standard normal entries, shape of ``x``."""
    if probe == "gaussian":
        return torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
    signs = torch.randint(0, 2, x.shape, device=x.device, generator=generator)
    return (2 * signs - 1).to(x.dtype)


def _divergence(
    field: Field, x: Tensor, t: Tensor, eps: Tensor | None, create_graph: bool
) -> tuple[Tensor, Tensor]:
    """``(v, div v)`` at points ``x`` (N, D): exact if ``eps`` is None, else ``eps^T J eps``.

    Assumes that ``v`` at a point depends on that point only (no mixing across the batch),
    so that the gradient of ``sum_n v_n[i]`` with respect to ``x`` gives row ``i`` of every
    point's Jacobian at once.
    """
    with torch.enable_grad():
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        v = field(x, t)
        if eps is not None:  # Hutchinson: one vector-Jacobian product, eps^T J, then . eps
            (vjp,) = torch.autograd.grad(v, x, eps, create_graph=create_graph)
            return v, (vjp * eps).sum(-1)
        div = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
        for i in range(x.shape[-1]):
            (row,) = torch.autograd.grad(
                v[..., i].sum(), x, create_graph=create_graph, retain_graph=True
            )
            div = div + row[..., i]
        return v, div


def divergence(
    field: Field,
    x: Tensor,
    t: Tensor | float,
    *,
    method: str = "exact",
    probe: str = "rademacher",
    generator: Generator | None = None,
) -> Tensor:
    """``div v(x, t) = tr(dv/dx)`` at each point, shape ``(N,)``: exact, or one Hutchinson probe.

    Args:
        field: a velocity field ``v(x, t)`` (e.g. a :class:`VelocityField`).
        x: points of shape ``(N, D)``.
        t: the time (a number or one per point).
        method: ``"exact"`` (D vector-Jacobian products) or ``"hutchinson"`` (one, with a
            fresh probe per point: unbiased, with the variance of the module docstring).
        probe: ``"rademacher"`` or ``"gaussian"`` (Hutchinson only).
        generator: the random generator of the probes.
    """
    where = "divergence"
    method, probe = _check_divergence(method, probe, where)
    x = _check_x(x, field, where)
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    eps = None if method == "exact" else _probe(x, probe, check_generator(generator, where))
    return _divergence(field, x, t, eps, create_graph=False)[1].detach()


# --- solving the ODE ----------------------------------------------------------------------


class _Counted(nn.Module):
    """The right-hand side ``f(t, y)`` torchdiffeq calls, counting its evaluations."""

    def __init__(self, fn: Callable[[Tensor, object], object]):
        super().__init__()
        self.fn, self.nfe = fn, 0

    def forward(self, t: Tensor, y):
        self.nfe += 1
        return self.fn(t, y)


def _odeint(
    rhs: _Counted, y0, t0: float, t1: float, method: str, steps: int | None, rtol, atol, ref
):
    from torchdiffeq import odeint  # here: importing it costs ~0.1 s that `import nfcourse` saves

    if steps is None:
        times = torch.tensor([t0, t1], dtype=ref.dtype, device=ref.device)
        try:
            return odeint(rhs, y0, times, method=method, rtol=rtol, atol=atol)
        except AssertionError as error:  # torchdiffeq asserts when the step size underflows
            if "underflow" not in str(error):
                raise
            raise StepUnderflowError(
                f"the adaptive solver ({method}, rtol={rtol:g}, atol={atol:g}) shrank its "
                f"step to 0 after {rhs.nfe} evaluations of the field: the field is too steep "
                "to follow at these tolerances, which a field trained with too large a "
                "learning rate (or not trained) can be. Check the training loss, train "
                "again with a smaller lr, or solve with fixed steps (method='rk4', steps=100) "
                "to see what the field does."
            ) from error
    # a fixed-step solver steps exactly from one time of the grid to the next
    times = torch.linspace(t0, t1, steps + 1, dtype=ref.dtype, device=ref.device)
    return odeint(rhs, y0, times, method=method)


def solve(
    field: Field,
    x: Tensor,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    method: str = "dopri5",
    steps: int | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> tuple[Tensor, int]:
    """Carry points ``x`` at time ``t0`` along ``dx/dt = v(x, t)`` to time ``t1``.

    ``t0 = 0, t1 = 1`` (the defaults) is sampling: base points to data. ``t0 = 1, t1 = 0``
    runs the flow backwards: data to base points.

    Args:
        field: a velocity field ``v(x, t)``.
        x: points of shape ``(N, D)``.
        method: ``"dopri5"`` (adaptive, tolerances ``rtol`` and ``atol``), or a fixed-step
            solver, ``"euler"``, ``"midpoint"`` or ``"rk4"``, with ``steps`` equal steps.
        steps: the number of steps of a fixed-step solver (None for dopri5).

    Returns:
        ``(x at t1, NFE)``, the number of evaluations of ``field``. Without gradients.
    """
    where = "solve"
    x = _check_x(x, field, where)
    method, steps, rtol, atol = _check_solver(method, steps, rtol, atol, where)
    t0 = check_number(t0, "t0", where)
    t1 = check_number(t1, "t1", where)
    rhs = _Counted(lambda t, y: field(y, t))
    with torch.no_grad():
        path = _odeint(rhs, x, t0, t1, method, steps, rtol, atol, x)
    return path[-1], rhs.nfe


def trajectories(
    field: Field,
    x: Tensor,
    times: Tensor | Sequence[float],
    *,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> Tensor:
    """The points ``x`` (at ``times[0]``) carried by the flow, at every one of ``times``.

    One adaptive (dopri5) solve that reports the solution at each time: shape ``(T, N, D)``,
    ``[0]`` being ``x`` itself. For pictures of the paths.
    """
    where = "trajectories"
    x = _check_x(x, field, where)
    times = torch.as_tensor(times, dtype=x.dtype, device=x.device)
    if times.dim() != 1 or len(times) < 2:
        raise ValueError(
            f"{where}: `times` must be a 1-D sequence of at least 2 times, got shape "
            f"{tuple(times.shape)}. Pass e.g. torch.linspace(0, 1, 11)."
        )
    _, _, rtol, atol = _check_solver("dopri5", None, rtol, atol, where)
    from torchdiffeq import odeint

    with torch.no_grad():
        return odeint(_Counted(lambda t, y: field(y, t)), x, times, rtol=rtol, atol=atol)


def log_prob(
    field: Field,
    x: Tensor,
    base: object | None = None,
    *,
    divergence: str = "exact",
    probe: str = "rademacher",
    generator: Generator | None = None,
    method: str = "dopri5",
    steps: int | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> tuple[Tensor, int]:
    """``log p_1(x)`` of the flow of ``field`` from ``base`` at ``t = 0``, and the NFE.

    Solves ``(x(t), a(t))`` backwards from ``(x, 0)`` at ``t = 1`` to ``t = 0`` with
    ``dx/dt = v`` and ``da/dt = div v`` (module docstring), and returns
    ``log p_0(x(0)) + a(0)``. Exact up to the solver's tolerance with
    ``divergence="exact"``; an unbiased estimate with ``"hutchinson"`` (one probe per point
    for the whole solve, drawn from ``generator``). Without gradients.

    Args:
        field: a velocity field ``v(x, t)``.
        x: points of shape ``(N, D)``.
        base: the distribution at ``t = 0`` (``log_prob`` of ``(N, D) -> (N,)``); None for
            ``N(0, I_D)``.
        divergence, probe: as in :func:`divergence`.
        method, steps, rtol, atol: as in :func:`solve`.
    """
    where = "log_prob"
    x = check_finite(_check_x(x, field, where), "x", where)
    method, steps, rtol, atol = _check_solver(method, steps, rtol, atol, where)
    divergence, probe = _check_divergence(divergence, probe, where)
    generator = check_generator(generator, where)
    base = StandardNormal(x.shape[-1]).to(x) if base is None else base
    eps = None if divergence == "exact" else _probe(x, probe, generator)

    def augmented(t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        v, div = _divergence(field, state[0], t, eps, create_graph=False)
        return v.detach(), div.detach()

    rhs = _Counted(augmented)
    with torch.no_grad():
        xs, a = _odeint(rhs, (x, x.new_zeros(x.shape[:-1])), 1.0, 0.0, method, steps, rtol, atol, x)
    return base.log_prob(xs[-1]) + a[-1], rhs.nfe


# --- flow matching --------------------------------------------------------------------------


def flow_matching_loss(field: Field, x1: Tensor, x0: Tensor, t: Tensor) -> Tensor:
    """The straight-line flow-matching loss for given draws: a scalar.

    ``x_t = (1 - t) x0 + t x1``, target ``x1 - x0``, loss
    ``mean_n sum_d (v(x_t, t) - (x1 - x0))_{n,d}^2``.

    Args:
        field: a velocity field ``v(x, t)``.
        x1: data points ``(N, D)``.
        x0: base points ``(N, D)`` (``N(0, I)`` draws).
        t: one time per example, shape ``(N,)`` or ``(N, 1)``, uniform on [0, 1].
    """
    t = _time_column(t, x1)
    xt = (1 - t) * x0 + t * x1
    return (field(xt, t) - (x1 - x0)).square().sum(-1).mean()


def _draw(
    x1: Tensor,
    generator: Generator | None,
    pairing: str = "independent",
    time_power: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """``x0 ~ N(0, I)`` like ``x1`` and one time per example, shape ``(N, 1)``.

    ``t = 1 - (1 - u)^time_power`` with ``u ~ U(0, 1)``: uniform for 1, more times near 1
    (the data) for larger powers. ``pairing="ot"`` reorders ``x0`` so that ``x0[i]`` goes
    with ``x1[i]`` by the optimal assignment of the batch (:func:`_ot_pairs`).
    """
    x0 = torch.randn(x1.shape, dtype=x1.dtype, device=x1.device, generator=generator)
    u = torch.rand((*x1.shape[:-1], 1), dtype=x1.dtype, device=x1.device, generator=generator)
    t = u if time_power == 1 else 1 - (1 - u) ** time_power
    if pairing == "ot":
        x0 = x0[_ot_pairs(x1, x0)]
    return x0, t


def _ot_pairs(x1: Tensor, x0: Tensor) -> Tensor:
    """The permutation ``p`` that minimizes ``sum_i ||x1[i] - x0[p[i]]||^2`` (a batch's OT).

    Minibatch optimal transport (Tong et al. 2024; Pooladian et al. 2023): every ``x0`` and
    every ``x1`` is still used once, so the pairs keep both marginals, but the lines from
    noise to data cross less, the conditional velocities that meet at a point agree more,
    and the regression's targets are less noisy. The assignment is SciPy's
    ``linear_sum_assignment``, ``O(N^3)``: for batches of a few hundred.
    """
    from scipy.optimize import linear_sum_assignment  # here: only this option needs SciPy

    cost = torch.cdist(x1.detach().double(), x0.detach().double()).square()
    _, columns = linear_sum_assignment(cost.cpu().numpy())
    return torch.as_tensor(columns, device=x0.device)


class _Average:
    """An exponential moving average of parameters, ``a <- d a + (1 - d) p`` after each step.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so that
    the average forgets the random start quickly in a short run.
    """

    def __init__(self, params: list[Tensor], decay: float):
        self.params, self.decay, self.updates = params, decay, 0
        self.values = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.values, [p.detach() for p in self.params], 1 - d)

    @torch.no_grad()
    def copy_to_params(self) -> None:
        for p, v in zip(self.params, self.values, strict=True):
            p.copy_(v)


class ContinuousFlow(nn.Module):
    """A continuous normalizing flow: a velocity field, a base ``N(0, I_D)``, and its solver.

    ``sample`` integrates ``t = 0 -> 1``; ``log_prob`` integrates the divergence backwards
    (module docstring). Both use the flow's solver settings unless given others, so
    ``nfcourse.nll(flow, data)`` and ``nfcourse.gap_to_entropy`` work as for a
    :class:`~nfcourse.Flow`. Train it with :func:`fit_flow_matching`.

    Args:
        dim: the number of coordinates D.
        hidden: the hidden layer widths of the field's MLP.
        field: a velocity field to use instead of a new :class:`VelocityField`.
        method, steps, rtol, atol: the default solver (see :func:`solve`).
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64, 64),
        *,
        field: nn.Module | None = None,
        method: str = "dopri5",
        steps: int | None = None,
        rtol: float = RTOL,
        atol: float = ATOL,
    ):
        super().__init__()
        self.dim = check_dim(dim, "ContinuousFlow")
        self.field = VelocityField(self.dim, hidden) if field is None else field
        self.base = StandardNormal(self.dim)
        self.method, self.steps, self.rtol, self.atol = _check_solver(
            method, steps, rtol, atol, "ContinuousFlow"
        )

    def _solver(self, method, steps, rtol, atol) -> dict:
        if method is None:  # the flow's own solver, with any tolerance given here
            method, steps = self.method, self.steps if steps is None else steps
        return dict(
            method=method,
            steps=steps,
            rtol=self.rtol if rtol is None else rtol,
            atol=self.atol if atol is None else atol,
        )

    def log_prob(
        self,
        x: Tensor,
        *,
        divergence: str = "exact",
        probe: str = "rademacher",
        generator: Generator | None = None,
        method: str | None = None,
        steps: int | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        return_nfe: bool = False,
    ) -> Tensor | tuple[Tensor, int]:
        """``log p(x)`` of points ``(N, D)``, shape ``(N,)`` (and the NFE if asked).

        See :func:`log_prob`; without gradients.
        """
        where = "ContinuousFlow.log_prob"
        x = check_finite(check_points(x, self.dim, "x", where), "x", where)
        x = as_model_dtype(x, self, "x", where)
        out, nfe = log_prob(
            self.field, x, self.base, divergence=divergence, probe=probe,
            generator=generator, **self._solver(method, steps, rtol, atol)
        )  # fmt: skip
        return (out, nfe) if return_nfe else out

    def sample(
        self,
        n: int = 1,
        generator: Generator | None = None,
        *,
        method: str | None = None,
        steps: int | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        return_nfe: bool = False,
    ) -> Tensor | tuple[Tensor, int]:
        """``n`` samples ``(n, D)``: base draws carried from ``t = 0`` to ``t = 1``."""
        where = "ContinuousFlow.sample"
        shape = check_count(n, where)
        generator = check_generator(generator, where)
        with allocation(where, math.prod(shape)):
            z = self.base.sample((math.prod(shape),), generator=generator)
            x, nfe = solve(self.field, z, **self._solver(method, steps, rtol, atol))
        x = x.reshape(*shape, self.dim)
        return (x, nfe) if return_nfe else x


def fit_flow_matching(
    flow: ContinuousFlow | nn.Module,
    data: Tensor | np.ndarray,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    schedule: str | None = "cosine",
    weight_decay: float = 0.0,
    clip_grad: float | None = None,
    ema: float | None = None,
    pairing: str = "independent",
    time_power: float = 1.0,
    progress: bool = True,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> History:
    """Train a velocity field by straight-line flow matching: no ODE is solved.

    Each step draws ``batch_size`` data points uniformly with replacement, one
    ``x0 ~ N(0, I)`` and one time ``t`` per point, and takes one Adam step on
    :func:`flow_matching_loss`. The loop (learning-rate schedule, progress bar, NaN and
    divergence checks, the restore of the best parameters) is :func:`nfcourse.fit`'s.

    Args:
        flow: a :class:`ContinuousFlow` (its ``field`` is trained), or a
            :class:`VelocityField`.
        data: training points ``(N, D)``.
        steps, batch_size, lr, schedule, weight_decay, clip_grad, progress, seed,
        generator: as in :func:`nfcourse.fit`.
        ema: None, or the decay ``d`` (e.g. 0.999) of an exponential moving average of the
            field's weights, updated after every step; the field ends with the average,
            which smooths the noise of the last steps' regression targets.
        pairing: ``"independent"`` (``x0`` drawn independently of ``x1``: the loss of
            Lipman et al. 2023) or ``"ot"`` (each batch's ``x0`` assigned to its ``x1`` by
            minibatch optimal transport, Tong et al. 2024: straighter paths, less noisy
            targets, a SciPy assignment per step).
        time_power: ``t = 1 - (1 - u)^time_power`` with ``u ~ U(0, 1)``; 1 is uniform,
            larger values put more of the regression near ``t = 1``, where the field must
            draw the data's fine detail. Any positive density of ``t`` has the same
            minimizer ``v*`` (the regression is pointwise in ``t``), but a field of
            limited size fits best where it is trained most: the course's benchmark uses
            3 on its sharp 2-D data (docs/benchmarks.md).

    Returns:
        A :class:`~nfcourse.train.History` of kind ``"flow_matching"``: ``loss`` holds
        every step's minibatch flow-matching loss (not an NLL: it does not approach the
        entropy but the conditional variance of the path, which is above 0).
    """
    where = "fit_flow_matching"
    field = flow.field if isinstance(flow, ContinuousFlow) else flow
    if not isinstance(field, VelocityField) and not isinstance(flow, ContinuousFlow):
        more = (
            " (a discrete flow trains by maximum likelihood: nfcourse.fit)"
            if callable(getattr(flow, "log_prob", None))
            else ""
        )
        raise TypeError(
            f"{where}: `flow` must be an nfcourse.continuous.ContinuousFlow or a "
            f"VelocityField, got {type(flow).__name__}{more}. Build one with "
            "ContinuousFlow(dim)."
        )
    settings = optimizer_settings(where, steps, lr, schedule, weight_decay, clip_grad, progress)
    batch_size = check_int(batch_size, "batch_size", where)
    if ema is not None:
        ema = check_number(ema, "ema", where, positive=True, example="0.999")
        if ema >= 1:
            raise ValueError(
                f"{where}: `ema` is the decay of the weights' moving average and must be "
                f"below 1, got {ema!r}. Try ema=0.999, or None for no average."
            )
    if pairing not in PAIRINGS:
        raise unknown_name("pairing", pairing, list(PAIRINGS))
    time_power = check_number(time_power, "time_power", where, positive=True, example="2.0")
    data = as_data(data, flow, "data", where)
    gen = make_generator(seed, generator, where, data.device)
    n = data.shape[0]

    def objective(step: int) -> tuple[Tensor, Tensor]:
        x1 = data if batch_size >= n else data[torch.randint(n, (batch_size,), generator=gen)]
        x0, t = _draw(x1, gen, pairing, time_power)
        loss = flow_matching_loss(field, x1, x0, t)
        return loss, loss

    advice = (
        f"Try a lower learning rate (lr={lr}), clip the gradients (clip_grad=1.0), or "
        "standardize the data."
    )
    params = [p for p in field.parameters() if p.requires_grad]
    average = _Average(params, ema) if ema is not None else None
    after_step = (lambda step, loop: average.update()) if average is not None else None
    history = minimize(field, objective, settings, "flow_matching", advice, after_step)
    if average is not None and history.restored_step is None:
        average.copy_to_params()
    return history


# --- validation -----------------------------------------------------------------------------


def _check_x(x: object, field: object, where: str) -> Tensor:
    if not callable(field):
        raise TypeError(
            f"{where}: `field` must be a velocity field, a callable v(x, t) -> (N, D) (e.g. "
            f"nfcourse.continuous.VelocityField(2)), got {type(field).__name__}."
        )
    x = check_points(x, getattr(field, "dim", None), "x", where)
    if x.dim() != 2:
        raise ValueError(
            f"{where}: `x` must have shape (N, D), one row per point, got shape "
            f"{tuple(x.shape)}. Flatten it first: x.reshape(-1, x.shape[-1])."
        )
    if isinstance(field, nn.Module):
        x = as_model_dtype(x, field, "x", where)
    return x


def _check_solver(method, steps, rtol, atol, where: str):
    if method not in (*ADAPTIVE, *FIXED):
        raise unknown_name("ODE solver", method, [*ADAPTIVE, *FIXED])
    if method in FIXED:
        if steps is None:
            raise ValueError(
                f"{where}: the fixed-step solver {method!r} needs `steps`, the number of "
                f"equal steps from t = 0 to 1, e.g. steps=20; or use method='dopri5', "
                "which chooses its own steps."
            )
        steps = check_int(steps, "steps", where, meaning="the number of solver steps")
    elif steps is not None:
        raise ValueError(
            f"{where}: method={method!r} is adaptive and takes no `steps` (got steps="
            f"{steps!r}); set its accuracy with rtol and atol, or pick a fixed-step solver "
            f"({', '.join(FIXED)})."
        )
    rtol = check_number(rtol, "rtol", where, positive=True, example="1e-5")
    atol = check_number(atol, "atol", where, positive=True, example="1e-5")
    return method, steps, rtol, atol


def _check_divergence(method: object, probe: object, where: str) -> tuple[str, str]:
    if method not in DIVERGENCES:
        raise unknown_name("divergence method", method, list(DIVERGENCES))
    if probe not in PROBES:
        raise unknown_name("Hutchinson probe", probe, list(PROBES))
    return method, probe
