"""Continuous flows: log-likelihoods against known answers, the flow-matching loss at its
known minimum, Hutchinson's estimator without bias, solvers that agree, clear errors.

Known answers used here:
- a linear field ``v(x, t) = A x`` moves ``N(0, I)`` to ``N(0, e^A e^{A^T})`` at ``t = 1``;
- for Gaussian data ``N(m, s^2 I)`` the straight-line path's marginal field ``v*`` is in
  closed form (:func:`gaussian_target_field`), its flow ends at ``N(m, s^2 I)``, and the
  flow-matching loss at ``v*`` is ``D pi s / 2``.
"""

from __future__ import annotations

import math

import pytest
import torch

import nfcourse as nf
from nfcourse import continuous as C
from nfcourse.data.grid import integrate_2d

F64 = torch.float64
TIGHT = dict(rtol=1e-9, atol=1e-9)


def linear_field(A):
    return lambda x, t: x @ A.T


def rotation_shear():
    """A non-symmetric, non-normal A: its flow rotates, shears and scales."""
    return torch.tensor([[0.3, -0.8], [0.5, -0.2]], dtype=F64)


def gaussian_of_linear_flow(A):
    M = torch.linalg.matrix_exp(A)
    return torch.distributions.MultivariateNormal(torch.zeros(len(A), dtype=F64), M @ M.T)


def random_field(seed=0, dim=2, hidden=(16, 16)):
    """A small random field, its weights scaled up so that its flow is far from the identity."""
    torch.manual_seed(seed)
    field = C.VelocityField(dim, hidden).double()
    with torch.no_grad():
        for p in field.parameters():
            p.mul_(1.5)
    return field


# --- log-likelihood: known answers -----------------------------------------------------------


def test_log_prob_of_a_linear_field_is_the_gaussian_it_makes():
    A = rotation_shear()
    x = torch.randn(300, 2, dtype=F64, generator=torch.Generator().manual_seed(0)) * 2
    lp, nfe = C.log_prob(linear_field(A), x, **TIGHT)
    expected = gaussian_of_linear_flow(A).log_prob(x)
    assert (lp - expected).abs().max() < 1e-7
    assert nfe > 0


def test_log_prob_of_the_exact_flow_matching_field_is_the_data_density():
    m, s = torch.tensor([1.0, -2.0], dtype=F64), 0.5
    x = m + s * torch.randn(300, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    lp, _ = C.log_prob(C.gaussian_target_field(m, s), x, **TIGHT)
    expected = torch.distributions.Normal(m, s).log_prob(x).sum(-1)
    assert (lp - expected).abs().max() < 1e-6


def test_the_sign_and_the_direction_of_time_matter():
    """The planted bugs of the divergence term's sign and of the time direction: both are
    far from the Gaussian (so the test above would catch them)."""
    A = rotation_shear()
    x = torch.randn(200, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    expected = gaussian_of_linear_flow(A).log_prob(x)
    z = x @ torch.linalg.matrix_exp(-A).T
    base = torch.distributions.MultivariateNormal(
        torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64)
    )
    wrong_sign = base.log_prob(z) + A.trace()  # + int div instead of - int div
    forward_time = base.log_prob(x @ torch.linalg.matrix_exp(A).T) - A.trace()  # 0 -> 1
    lp, _ = C.log_prob(linear_field(A), x, **TIGHT)
    assert (lp - expected).abs().max() < 1e-7
    assert (wrong_sign - expected).abs().min() > 0.1
    assert (forward_time - expected).abs().max() > 0.5


def test_density_of_a_random_field_integrates_to_one():
    field = random_field(seed=0)
    flow = C.ContinuousFlow(2, field=field, rtol=1e-7, atol=1e-7)

    def density(points):
        return flow.log_prob(points).exp()

    mass = integrate_2d(density, ((-8.0, 8.0), (-8.0, 8.0)), 0.1)
    assert abs(mass - 1) < 2e-3
    # the field really moves the mass: its density is not the base's
    grid = torch.randn(500, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    assert (flow.log_prob(grid) - flow.base.log_prob(grid)).abs().max() > 0.5


class FunctionField(torch.nn.Module):
    """A plain function ``v(x, t)`` as a module (no parameters)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, t):
        return self.fn(x, t)


def test_samples_and_log_prob_are_consistent():
    """Samples of the flow scored by the flow: the mean of -log p is the Gaussian's entropy."""
    A = rotation_shear()
    field = FunctionField(linear_field(A))
    flow = C.ContinuousFlow(2, field=field, rtol=1e-8, atol=1e-8).double()
    x = flow.sample(4000, generator=torch.Generator().manual_seed(3))
    assert x.dtype == F64
    nll = -flow.log_prob(x)
    entropy = gaussian_of_linear_flow(A).entropy().item()
    assert abs(nll.mean().item() - entropy) < 4 * nll.std().item() / math.sqrt(len(nll))


# --- the divergence ------------------------------------------------------------------------


def test_exact_divergence_is_the_trace_of_the_autograd_jacobian():
    field = random_field(seed=1, dim=3)
    x = torch.randn(5, 3, dtype=F64)
    div = C.divergence(field, x, 0.3)
    for i in range(5):
        J = torch.autograd.functional.jacobian(lambda p: field(p[None], 0.3)[0], x[i])
        assert abs(div[i].item() - J.trace().item()) < 1e-10


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased_with_the_variance_of_the_formula(probe):
    A = torch.tensor([[0.5, 1.0, -0.3], [0.2, -1.0, 0.7], [1.5, 0.1, 0.4]], dtype=F64)
    S = (A + A.T) / 2
    variance = 2 * (S.square().sum() - (probe == "rademacher") * S.diagonal().square().sum())
    n = 40_000
    x = torch.randn(n, 3, dtype=F64)
    est = C.divergence(
        linear_field(A),
        x,
        0.0,
        method="hutchinson",
        probe=probe,
        generator=torch.Generator().manual_seed(4),
    )
    se = math.sqrt(variance / n)
    assert abs(est.mean().item() - A.trace().item()) < 4 * se
    assert est.var().item() == pytest.approx(variance.item(), rel=0.05)
    # a planted bug: uniform probes (E[eps eps^T] != I) are biased far beyond the error
    eps = torch.rand(n, 3, dtype=F64)
    biased = ((eps @ A) * eps).sum(-1)
    assert abs(biased.mean().item() - A.trace().item()) > 10 * se


def test_hutchinson_log_prob_is_unbiased():
    A = rotation_shear()
    x = torch.randn(1, 2, dtype=F64).expand(4000, 2).contiguous()
    lp, _ = C.log_prob(
        linear_field(A),
        x,
        divergence="hutchinson",
        generator=torch.Generator().manual_seed(5),
        **TIGHT,
    )
    exact = gaussian_of_linear_flow(A).log_prob(x[:1])
    assert lp.std() > 0.1  # one probe per point: the estimates scatter
    assert abs(lp.mean() - exact).item() < 4 * lp.std().item() / math.sqrt(len(lp))


# --- flow matching ---------------------------------------------------------------------------


def test_flow_matching_loss_at_the_exact_field_is_d_pi_s_over_2():
    m, s, n = torch.tensor([1.0, -2.0, 0.5], dtype=F64), 0.7, 400_000
    g = torch.Generator().manual_seed(6)
    x1 = m + s * torch.randn(n, 3, dtype=F64, generator=g)
    x0, t = C._draw(x1, g)
    field = C.gaussian_target_field(m, s)
    per_example = (field((1 - t) * x0 + t * x1, t) - (x1 - x0)).square().sum(-1)
    loss = C.flow_matching_loss(field, x1, x0, t).item()
    assert loss == pytest.approx(per_example.mean().item(), rel=1e-12)
    assert abs(loss - 3 * math.pi * s / 2) < 4 * per_example.std().item() / math.sqrt(n)
    # the exact field is the minimizer: moving it by delta adds E||delta||^2
    delta = torch.tensor([0.3, -0.2, 0.1], dtype=F64)
    worse = C.flow_matching_loss(lambda x, t: field(x, t) + delta, x1, x0, t).item()
    assert worse - loss == pytest.approx(delta.square().sum().item(), abs=0.01)
    # planted bugs: the reversed target, and the mean over coordinates, miss the known value
    reversed_target = (field((1 - t) * x0 + t * x1, t) - (x0 - x1)).square().sum(-1).mean()
    assert abs(reversed_target.item() - 3 * math.pi * s / 2) > 1


RECIPES = {
    "plain": dict(hidden=(32, 32)),
    "the benchmark's options": dict(
        hidden=(32, 32), time_features=4, ema=0.99, pairing="ot", time_power=1.5
    ),
}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_training_by_flow_matching_learns_a_gaussian(recipe):
    options = dict(RECIPES[recipe])
    torch.manual_seed(0)
    m, s = torch.tensor([1.0, -1.0]), 0.5
    data = m + s * torch.randn(4000, 2)
    field = C.VelocityField(2, options.pop("hidden"), time_features=options.pop("time_features", 0))
    flow = C.ContinuousFlow(2, field=field)
    history = C.fit_flow_matching(flow, data, steps=600, lr=5e-3, progress=False, seed=0, **options)
    assert history.kind == "flow_matching" and len(history.loss) == 600
    if options.get("pairing") != "ot":  # with OT pairs the targets vary less: a lower loss
        assert history.final_loss < 2.2  # the minimum is D pi s / 2 = 1.57; the start is near 3
    x = flow.sample(4000, generator=torch.Generator().manual_seed(1))
    assert (x.mean(0) - m).abs().max() < 0.1
    assert (x.std(0) - s).abs().max() < 0.1
    test = m + s * torch.randn(2000, 2)
    gap = nf.nll(flow, test) - torch.distributions.Normal(m, s).entropy().sum().item()
    assert 0 <= gap + 0.05 and gap < 0.1


def test_time_features_are_sines_and_cosines_of_t():
    field = C.VelocityField(2, hidden=(8,), time_features=3).double()
    assert field.net[0].in_features == 2 + 1 + 2 * 3
    x = torch.randn(5, 2, dtype=F64)
    t = torch.rand(5, dtype=F64)
    k = torch.arange(1, 4, dtype=F64)
    features = torch.cat([t[:, None], (math.pi * k * t[:, None]).sin(),
                          (math.pi * k * t[:, None]).cos()], -1)  # fmt: skip
    assert torch.allclose(field(x, t), field.net(torch.cat([x, features], -1)), atol=1e-12)
    # one time for all points, as a number, as a 0-d tensor and per point, agree
    same = field(x, torch.full((5, 1), 0.3, dtype=F64))
    assert torch.allclose(field(x, 0.3), same) and torch.allclose(field(x, torch.tensor(0.3)), same)
    assert C.VelocityField(2, hidden=(8,)).net[0].in_features == 3  # 0 features: t alone


def test_ot_pairs_are_the_cheapest_assignment():
    from itertools import permutations

    g = torch.Generator().manual_seed(11)
    x1, x0 = torch.randn(6, 2, generator=g, dtype=F64), torch.randn(6, 2, generator=g, dtype=F64)

    def cost(p):
        return (x1 - x0[list(p)]).square().sum().item()

    best = min(cost(p) for p in permutations(range(6)))
    pairs = C._ot_pairs(x1, x0)
    assert sorted(pairs.tolist()) == list(range(6))  # every x0 used once: a permutation
    assert cost(pairs.tolist()) == pytest.approx(best, rel=1e-12)
    assert cost(range(6)) > best + 1e-6  # the independent pairs of this draw are not optimal
    # through _draw: the x0 of a batch are a permutation of the independent ones
    x0_ot, _ = C._draw(x1, torch.Generator().manual_seed(3), pairing="ot")
    x0_ind, _ = C._draw(x1, torch.Generator().manual_seed(3))
    assert torch.equal(x0_ot.sum(0), x0_ind[C._ot_pairs(x1, x0_ind)].sum(0))
    assert not torch.equal(x0_ot, x0_ind)


def test_time_power_moves_the_times_towards_the_data():
    x1 = torch.zeros(200_000, 2, dtype=F64)
    g = torch.Generator().manual_seed(12)
    _, uniform = C._draw(x1, g)
    _, late = C._draw(x1, g, time_power=2.0)
    assert 0 <= late.min() and late.max() <= 1
    se = 0.3 / math.sqrt(len(x1))
    assert abs(uniform.mean().item() - 1 / 2) < 4 * se
    assert abs(late.mean().item() - 2 / 3) < 4 * se  # E[1 - (1 - u)^2] = 1 - 1/3


def test_the_moving_average_follows_its_recursion():
    p = torch.nn.Parameter(torch.zeros(3, dtype=F64))
    average = C._Average([p], decay=0.9)
    expected = torch.zeros(3, dtype=F64)
    for n in range(1, 40):
        with torch.no_grad():
            p.fill_(float(n))
        average.update()
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * p.detach()
    assert torch.allclose(average.values[0], expected, atol=1e-12)
    assert (average.values[0] < 39 - 3).all()  # it lags behind the last value
    average.copy_to_params()
    assert torch.equal(p.detach(), expected)


def test_fit_with_a_moving_average_ends_with_the_average(monkeypatch):
    made = []

    class Recording(C._Average):
        def __init__(self, params, decay):
            super().__init__(params, decay)
            made.append(self)

        def copy_to_params(self):
            self.last = [p.detach().clone() for p in self.params]
            super().copy_to_params()

    monkeypatch.setattr(C, "_Average", Recording)
    torch.manual_seed(0)
    field = C.VelocityField(2, hidden=(8,))
    data = torch.randn(500, 2) + 3
    C.fit_flow_matching(field, data, steps=50, progress=False, seed=0, ema=0.9)
    (average,) = made
    assert average.updates == 50  # one update per step
    for p, v in zip(field.parameters(), average.values, strict=True):
        assert torch.equal(p.detach(), v)  # the field ends with the average ...
    moved = [(v - w).abs().max() for v, w in zip(average.values, average.last, strict=True)]
    assert max(moved) > 1e-4
    made.clear()  # ... which is not the last step's weights; without ema, no average
    C.fit_flow_matching(field, data, steps=5, progress=False, seed=0)
    assert not made


# --- solvers -------------------------------------------------------------------------------


def test_fixed_steps_converge_to_the_adaptive_solution():
    field = C.gaussian_target_field(torch.tensor([2.0, 0.0], dtype=F64), 0.3)
    z = torch.randn(200, 2, dtype=F64, generator=torch.Generator().manual_seed(7))
    exact, nfe = C.solve(field, z, **TIGHT)
    errors = {}
    for method, steps in [("euler", 20), ("euler", 40), ("midpoint", 20), ("rk4", 20)]:
        x, count = C.solve(field, z, method=method, steps=steps)
        assert count == steps * C.FIXED[method]
        errors[method, steps] = (x - exact).abs().max().item()
    assert errors["euler", 40] == pytest.approx(errors["euler", 20] / 2, rel=0.2)  # first order
    assert errors["midpoint", 20] < errors["euler", 40] / 5
    assert errors["rk4", 20] < 1e-5
    # backwards from t = 1 to 0 gives the starting points back
    back, _ = C.solve(field, exact, t0=1.0, t1=0.0, **TIGHT)
    assert (back - z).abs().max() < 1e-6


def test_tighter_tolerances_cost_more_evaluations():
    field = random_field(seed=2)
    z = torch.randn(100, 2, dtype=F64)
    _, loose = C.solve(field, z, rtol=1e-3, atol=1e-3)
    _, tight = C.solve(field, z, rtol=1e-8, atol=1e-8)
    assert tight > loose


def test_the_flow_works_with_the_package_evaluation():
    flow = C.ContinuousFlow(2, hidden=(8,))
    data = torch.randn(50, 2)
    assert math.isfinite(nf.nll(flow, data))
    x, nfe = flow.sample(7, return_nfe=True)
    assert x.shape == (7, 2) and nfe > 0
    x, nfe = flow.sample(7, method="midpoint", steps=5, return_nfe=True)
    assert nfe == 10
    assert flow.log_prob(data[:3]).shape == (3,)


# --- bad arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda f: C.solve(f, torch.zeros(3, 2), method="rk45"), KeyError, "dopri5"),
        (lambda f: C.solve(f, torch.zeros(3, 2), method="euler"), ValueError, "needs `steps`"),
        (lambda f: C.solve(f, torch.zeros(3, 2), steps=10), ValueError, "takes no `steps`"),
        (lambda f: C.solve(f, torch.zeros(3, 2), rtol=0), ValueError, "`rtol` must be"),
        (lambda f: C.solve(f, torch.zeros(3, 3)), ValueError, "shape (..., 2)"),
        (lambda f: C.solve(f, [[0.0, 0.0]]), TypeError, "torch.Tensor"),
        (lambda f: C.solve("v", torch.zeros(3, 2)), TypeError, "`field` must be"),
        (lambda f: C.log_prob(f, torch.zeros(3, 2), divergence="trace"), KeyError, "exact"),
        (
            lambda f: C.log_prob(f, torch.zeros(3, 2), divergence="hutchinson", probe="uniform"),
            KeyError,
            "rademacher",
        ),
        (lambda f: C.log_prob(f, torch.full((3, 2), math.nan)), ValueError, "NaN"),
        (lambda f: C.ContinuousFlow(0), ValueError, "`dim` must be"),
        (lambda f: C.ContinuousFlow(2).sample(-1), ValueError, "number of samples"),
        (
            lambda f: C.fit_flow_matching(nf.realnvp(2), torch.zeros(5, 2)),
            TypeError,
            "ContinuousFlow",
        ),
        (
            lambda f: C.fit_flow_matching(C.ContinuousFlow(2), torch.zeros(5, 3)),
            ValueError,
            "(N, 2)",
        ),
        (
            lambda f: C.fit_flow_matching(C.ContinuousFlow(2), torch.zeros(5, 2), steps=0),
            ValueError,
            "`steps`",
        ),
        (
            lambda f: C.fit_flow_matching(C.ContinuousFlow(2), torch.zeros(5, 2), ema=1.0),
            ValueError,
            "below 1",
        ),
        (
            lambda f: C.fit_flow_matching(C.ContinuousFlow(2), torch.zeros(5, 2), pairing="sink"),
            KeyError,
            "independent",
        ),
        (
            lambda f: C.fit_flow_matching(C.ContinuousFlow(2), torch.zeros(5, 2), time_power=0),
            ValueError,
            "`time_power`",
        ),
        (lambda f: C.VelocityField(2, time_features=-1), ValueError, "`time_features`"),
    ],
    ids=[
        "unknown solver",
        "fixed without steps",
        "adaptive with steps",
        "rtol 0",
        "wrong D",
        "a list",
        "not a field",
        "unknown divergence",
        "unknown probe",
        "NaN",
        "dim 0",
        "negative n",
        "a discrete flow",
        "data of the wrong D",
        "no steps",
        "ema 1",
        "unknown pairing",
        "time power 0",
        "negative time features",
    ],
)
def test_bad_arguments_get_clear_errors(call, error, words):
    field = C.VelocityField(2, hidden=(4,))
    with pytest.raises(error) as info:
        call(field)
    assert words in str(info.value)


# --- paths and pictures --------------------------------------------------------------------


def test_trajectories_start_at_the_points_and_end_where_solve_ends():
    field = random_field(seed=3)
    z = torch.randn(20, 2, dtype=F64)
    path = C.trajectories(field, z, torch.linspace(0, 1, 6), **TIGHT)
    end, _ = C.solve(field, z, **TIGHT)
    assert path.shape == (6, 20, 2)
    assert torch.equal(path[0], z)
    assert (path[-1] - end).abs().max() < 1e-7
    with pytest.raises(ValueError, match="at least 2 times"):
        C.trajectories(field, z, [0.0])


def test_plot_trajectories_draws_one_line_per_point():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nfcourse.viz.continuous import plot_trajectories

    ax = plot_trajectories(C.VelocityField(2, hidden=(8,)), torch.randn(15, 2), times=5)
    assert len(ax.lines) == 15
    plt.close(ax.figure)


# --- the benchmark runs end to end -------------------------------------------------------------


def test_the_benchmark_runs_and_renders_its_section(tmp_path):
    """A smoke test at a tiny budget: one row per (data set, model, seed), the page says
    whether the target is met; nothing here is timed or compared."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import continuous as bench

    cfg = bench.ContinuousConfig(
        seeds=(0, 1), budget_s=0.3, n_train=500, n_test=100, n_time=20, field_hidden=(8,),
        fm_hidden=(16,), hidden=(8,), layers=2, fm_batch_size=64, pairing="ot",
    )  # fmt: skip
    rows = bench.run(cfg, log=lambda message: None)
    assert len(rows) == 2 * len(cfg.models) * 2
    assert all(r["steps"] >= 1 and math.isfinite(r["gap"]) for r in rows)
    assert all(0.3 <= r["train_s"] < 3 for r in rows)  # CPU seconds: the budget, one step more
    results = {
        "meta": {"date": "today", "machine": "here", "load": "low", "shared": "nothing"},
        "config": {**bench.asdict(cfg), "lr": bench.learning_rates(cfg.budget_s)},
        "rows": rows,
    }
    page = "\n".join(bench.markdown(results, tmp_path))
    assert "| checkerboard | flow matching |" in page and "| rings | NSF |" in page
    assert "| rings | flow matching, plain |" in page
    assert "s of CPU time" in page and "minibatch optimal transport" in page
    assert page.count("the target (no worse than the best discrete flow) is") == 2
    # the two recipes differ as the page says
    fm, plain = bench.build("flow matching", cfg), bench.build(bench.PLAIN, cfg)
    assert fm.field.time_features == cfg.time_features and plain.field.time_features == 0


def test_the_budget_sweep_runs_every_budget_and_says_where_each_model_is_ahead():
    """The sweep at two tiny budgets: a row per (budget, data set, model, seed) carrying its
    budget; its table and its verdict line are computed from the rows (made-up gaps below,
    so that the verdict is known: flow matching behind at 1 s, no worse at 2 s)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import continuous as bench

    cfg = bench.ContinuousConfig(
        datasets=("rings",), models=("flow matching", "NSF"), seeds=(0,), n_train=500,
        n_test=100, n_time=20, fm_hidden=(16,), hidden=(8,), layers=2, fm_batch_size=64,
    )  # fmt: skip
    rows = bench.sweep(cfg, budgets=(0.1, 0.2))
    assert [(r["model"], r["budget_s"]) for r in rows] == [
        ("flow matching", 0.1), ("flow matching", 0.2), ("NSF", 0.1), ("NSF", 0.2)
    ]  # fmt: skip
    assert all(r["train_s"] >= r["budget_s"] and math.isfinite(r["gap"]) for r in rows)
    made_up = {("flow matching", 0.1): 0.30, ("flow matching", 0.2): 0.10,
               ("NSF", 0.1): 0.15, ("NSF", 0.2): 0.12}  # fmt: skip
    for r in rows:
        r["gap"] = made_up[r["model"], r["budget_s"]]
        r["budget_s"] *= 10
    section = {"meta": {"command": "c", "date": "d", "machine": "m"}, "rows": rows}
    page = "\n".join(bench.sweep_markdown(section))
    assert "| data set | model | 1 s | 2 s |" in page
    assert f"| rings | NSF | 0.150 ({rows[2]['steps']}) | 0.120 ({rows[3]['steps']}) |" in page
    assert "behind at 1 s (2.0x); no worse at 2 s (0.8x)." in page

    # with seeds, "no worse" allows two standard errors of the difference, as the main
    # table's verdict: flow matching 0.11 +- 0.01 against NSF 0.10 +- 0 at 2 s is no worse,
    # 0.14 +- 0.01 is behind
    def seeds(gaps_at_2s: list[float]) -> list[dict]:
        made = []
        for seed, gap in enumerate(gaps_at_2s):
            made += [{**rows[1], "seed": seed, "gap": gap}, {**rows[3], "seed": seed, "gap": 0.10}]
        return made

    for gaps, word in (([0.10, 0.12], "no worse at 2 s"), ([0.13, 0.15], "behind at 2 s")):
        page = "\n".join(bench.sweep_markdown({**section, "rows": seeds(gaps)}))
        assert word in page, page


def test_the_tuning_runs_every_learning_rate_and_picks_the_smallest_mean_gap():
    """Every model at every learning rate of the grid on the tuning seed; the pick is the
    learning rate with the smallest gap averaged over the data sets (made-up gaps below, so
    that the pick is known, one of them a diverged run), and the page marks it."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import continuous as bench

    cfg = bench.ContinuousConfig(
        models=("flow matching", "NSF"), budget_s=0.1, n_train=500, n_test=100, n_time=20,
        fm_hidden=(16,), hidden=(8,), layers=2, fm_batch_size=64,
    )  # fmt: skip
    rows = bench.tune(cfg, grid=(1e-3, 1e-2))
    assert [(r["model"], r["dataset"], r["lr"]) for r in rows] == [
        (m, ds, lr) for m in cfg.models for ds in cfg.datasets for lr in (1e-3, 1e-2)
    ]
    assert {r["seed"] for r in rows} == {bench.TUNING_SEED}
    assert bench.TUNING_SEED not in cfg.seeds
    assert all(r["budget_s"] == 0.1 and math.isfinite(r["gap"]) for r in rows)
    # flow matching: 1e-2 is better on average although worse on checkerboard; NSF: 1e-2
    # diverged on rings, so 1e-3 wins
    made_up = {("flow matching", "checkerboard", 1e-3): 0.10,
               ("flow matching", "checkerboard", 1e-2): 0.12,
               ("flow matching", "rings", 1e-3): 0.50, ("flow matching", "rings", 1e-2): 0.30,
               ("NSF", "checkerboard", 1e-3): 0.20, ("NSF", "checkerboard", 1e-2): 0.05,
               ("NSF", "rings", 1e-3): 0.40, ("NSF", "rings", 1e-2): 0.01}  # fmt: skip
    for r in rows:
        r["gap"] = made_up[r["model"], r["dataset"], r["lr"]]
        r["diverged"] = (r["model"], r["dataset"], r["lr"]) == ("NSF", "rings", 1e-2)
    assert bench.picked(rows) == {0.1: {"flow matching": 1e-2, "NSF": 1e-3}}
    section = {"meta": {"command": "c", "date": "d", "machine": "m"}, "rows": rows}
    page = "\n".join(bench.tuning_markdown([section]))
    assert "| budget | data set | model | lr 0.001 | lr 0.01 |" in page
    assert "| 0.1 s | rings | NSF | **0.400** | failed |" in page
    assert "| 0.1 s | checkerboard | flow matching | 0.100 | **0.120** |" in page
    # a second budget is picked on its own
    longer = [{**r, "budget_s": 0.2, "gap": 1 - r["gap"], "diverged": False} for r in rows]
    assert bench.picked(rows + longer)[0.2] == {"flow matching": 1e-3, "NSF": 1e-3}


def test_a_run_uses_the_picks_of_the_largest_budget_tuned_not_above_its_own(monkeypatch):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import continuous as bench

    """Per model: a model tuned at 20 s only keeps its 20 s pick at longer budgets."""
    short, long = {"NSF": 1.0, "RealNVP": 3.0}, {"NSF": 2.0}
    monkeypatch.setattr(bench, "LEARNING_RATES", {20.0: short, 80.0: long})
    assert bench.learning_rates(5.0) == bench.learning_rates(79.0) == short
    assert bench.learning_rates(80.0) == bench.learning_rates(240.0) == {"NSF": 2.0, "RealNVP": 3.0}


def test_the_benchmark_trains_with_the_learning_rates_its_tuning_picked():
    """``LEARNING_RATES`` are not typed in by hand: they are the ones the saved tuning runs
    (``python -m benchmarks.continuous --tune``) pick, and the saved tables used them and
    the flow-matching recipe of the code."""
    import json
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from benchmarks import continuous as bench

    results = json.loads((root / "docs" / "benchmarks-continuous.json").read_text())
    tuning = [r for section in results["tuning"] for r in section["rows"]]
    assert bench.picked(tuning) == bench.LEARNING_RATES
    recipe = bench.recipe("flow matching", bench.ContinuousConfig())
    for part in (results, results["sweep"]):
        # the tables were made with the recipe of the code
        stored = bench.ContinuousConfig(**bench._known(part["config"]))
        assert bench.recipe("flow matching", stored) == recipe
        for row in part["rows"]:
            budget = row.get("budget_s", part["config"]["budget_s"])
            assert row["lr"] == bench.learning_rates(budget)[row["model"]]


def test_a_field_the_adaptive_solver_cannot_follow_gets_a_clear_error():
    """``dx/dt = 10 x^2`` from ``x = 1`` blows up at ``t = 0.1``: dopri5's step underflows,
    and instead of torchdiffeq's bare assertion the learner reads what happened and what to
    try; the benchmark records such a run as failed instead of stopping."""
    x = torch.ones(3, 2, dtype=torch.float64)
    with pytest.raises(C.StepUnderflowError, match=r"shrank its step to 0 .* smaller lr"):
        C.solve(lambda x, t: 10 * x**2, x)
    assert issubclass(C.StepUnderflowError, RuntimeError)


def test_the_benchmark_records_a_run_the_solver_cannot_score_as_failed(monkeypatch):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import continuous as bench

    def steep(model, test):
        raise C.StepUnderflowError("too steep")

    monkeypatch.setattr(bench, "score", steep)
    cfg = bench.ContinuousConfig(
        datasets=("rings",), models=("flow matching",), seeds=(0,), budget_s=0.1,
        n_train=500, n_test=100, n_time=20, fm_hidden=(16,), fm_batch_size=64,
    )  # fmt: skip
    (row,) = bench.run(cfg, log=lambda message: None)
    assert row["diverged"] and math.isnan(row["gap"]) and math.isnan(row["sample_s"])
    assert bench.picked([{**row, "budget_s": 0.1}]) == {0.1: {"flow matching": row["lr"]}}
