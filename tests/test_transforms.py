"""``nfcourse.transforms``: the blog post's ``torch.distributions.transforms`` examples made real.

1. The blog post's five examples run verbatim (only the import of ``T`` changed), fail
   with an error that explains the blog post's mistake, and the code the error says to
   write instead runs and gives a proper density (finite, integrates to 1, samples).
2. The adapter, ``T.LayerTransform``, over every layer of the registry (tests/registry.py),
   in float64: round trip, ``log_abs_det_jacobian`` and the inverse's against the autograd
   Jacobian, ``TransformedDistribution.log_prob`` = base log-prob + the inverse's ladj.
3. Every named transform, with parameters far from the identity, in float64: round trip,
   ``log_abs_det_jacobian`` against the autograd Jacobian, shapes for ``(N, D)`` and
   ``(100, 100, D)``, gradients to the parameters, density integrating to 1.
4. Bad arguments: each a clear error that names the argument, what was expected,
   what came, and what to do (and suggested code runs).
"""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import registry  # noqa: E402
import torch  # noqa: E402
import torch.distributions as D  # noqa: E402
from torch import nn  # noqa: E402

import nfcourse.transforms as T  # noqa: E402
from nfcourse import (  # noqa: E402
    MADE,
    MAF,
    MaskedLinear,
    mlp,  # noqa: E402
)
from nfcourse.testing import autograd_ladj  # noqa: E402

F64 = torch.float64

# --- the blog post, section 5, verbatim (line breaks restored; only the import of T changes) ---

BLOG_IMPORT = "import torch.distributions.transforms as T"
BLOG_HEADER = """
import torch
import torch.distributions as dist
import torch.distributions.transforms as T
import matplotlib.pyplot as plt
# A helper function to plot a 2D distribution
def plot_dist(dist, title, ax=None):
    if ax is None:
        fig, ax = plt.subplots()
    x1 = torch.linspace(-4, 4, 100)
    x2 = torch.linspace(-4, 4, 100)
    X1, X2 = torch.meshgrid(x1, x2)
    X = torch.stack([X1, X2], dim=-1)
    p = dist.log_prob(X).exp()
    ax.contourf(X1, X2, p, cmap="Blues")
    ax.set_title(title)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
# A helper function to sample from a 2D distribution
def sample_dist(dist, num_samples):
    samples = dist.sample((num_samples,))
    x1 = samples[:, 0]
    x2 = samples[:, 1]
    return x1, x2
base_dist = dist.Normal(torch.zeros(2), torch.ones(2))
"""
BLOG_BASE_PLOT = """
plot_dist(base_dist, "Base distribution")
plt.show()
"""

# name: (the statement that builds the transform, the rest of the example)
BLOG_EXAMPLES = {
    "affine": (
        """affine_transform = T.AffineTransform(loc=torch.zeros(2), scale_tril=torch.tensor([[2., -2.], [2., 2.]]))""",  # noqa: E501
        """
affine_dist = dist.TransformedDistribution(base_dist, [affine_transform])
plot_dist(affine_dist, "Affine transformation")
plt.show()
""",
    ),
    "planar": (
        """planar_transform = T.PlanarTransform(torch.tensor([1., -1.]), torch.tensor([0.]), torch.tensor([0.]))""",  # noqa: E501
        """
planar_dist = dist.TransformedDistribution(base_dist, [planar_transform])
plot_dist(planar_dist, "Planar transformation")
plt.show()
""",
    ),
    "radial": (
        """radial_transform = T.RadialTransform(torch.tensor([1., 1.]), torch.tensor([0.]), torch.tensor([1.]))""",  # noqa: E501
        """
radial_dist = dist.TransformedDistribution(base_dist, [radial_transform])
plot_dist(radial_dist, "Radial transformation")
plt.show()
""",
    ),
    "coupling": (
        """coupling_transform = T.CouplingTransform(
    mask=torch.tensor([1, 0]), # mask the first variable
    transform_net=lambda x: torch.nn.Sequential( # define the neural network
        torch.nn.Linear(1, 2),
        torch.nn.Tanh(),
        torch.nn.Linear(2, 2)
    )(x)
)""",
        """
coupling_dist = dist.TransformedDistribution(base_dist, [coupling_transform])
plot_dist(coupling_dist, "Coupling transformation")
plt.show()
""",
    ),
    "autoregressive": (
        """autoregressive_transform = T.AutoregressiveTransform(
    transform_net=lambda x: torch.nn.Sequential( # define the neural network
        torch.nn.Linear(2, 2),
        torch.nn.Tanh(),
        torch.nn.Linear(2, 2)
    )(x)
)""",
        """
autoregressive_dist = dist.TransformedDistribution(base_dist, [autoregressive_transform])
plot_dist(autoregressive_dist, "Autoregressive transformation")
plt.show()
""",
    ),
}

# what each error must explain, and the class the corrected code must build
BLOG_ERRORS = {
    "affine": (
        ValueError,
        r"`scale_tril` must be lower-triangular.*rotation by 45 degrees times a scale of "
        r"2\.828 = sqrt\(8\).*errata 2.*matrix",
        "T.AffineTransform(loc=torch.zeros(2), matrix=torch.tensor([[2.0, -2.0], [2.0, 2.0]]))",
    ),
    "planar": (
        ValueError,
        r"`w` must have shape \(2,\).*got shape \(1,\).*w = 0.*mere translation.*errata 5",
        "T.PlanarTransform(u=torch.tensor([1.0, -1.0]), w=torch.tensor([1.0, -1.0]), "
        "b=torch.zeros(1))",
    ),
    "radial": (
        ValueError,
        r"`alpha` must be > 0 \(Rezende and Mohamed.*got alpha = 0.*undefined at z0"
        r".*hole with no preimage",
        "T.RadialTransform(z0=torch.tensor([1.0, 1.0]), alpha=torch.tensor([1.0]), "
        "beta=torch.tensor([1.0]))",
    ),
    "coupling": (
        TypeError,
        r"`transform_net` must be a torch.nn.Module built once, got a lambda.*new, randomly "
        r"initialized network at every call.*errata 6",
        "T.CouplingTransform(mask=torch.tensor([1, 0]), transform_net=torch.nn.Sequential("
        "torch.nn.Linear(1, 2), torch.nn.Tanh(), torch.nn.Linear(2, 2)))",
    ),
    "autoregressive": (
        TypeError,
        r"built once, got a lambda.*errata 6.*returns 2 values per point, not 2 \* D = 4.*"
        r"form a cycle.*not triangular.*errata 7",
        "T.AutoregressiveTransform(transform_net=T.MADE(2, hidden=(16,)))",
    ),
}


def written_instead(message: str) -> str:
    """The one line of code an error message says to write instead."""
    found = re.search(r"Write instead:\n    (.+)\n", message)
    assert found, f"no 'Write instead:' line in: {message}"
    return found.group(1)


def blog_namespace() -> dict:
    ns: dict = {}
    exec(BLOG_HEADER.replace(BLOG_IMPORT, "import nfcourse.transforms as T"), ns)
    return ns


@pytest.mark.filterwarnings("ignore::UserWarning")  # the blog post's meshgrid without indexing
def test_the_blog_posts_base_plot_fails_itself():
    """Not ours to fix, but the course must know: the blog post's own base plot does not run.

    ``Normal(torch.zeros(2), torch.ones(2))`` is two independent 1-D normals (batch
    shape 2), so ``log_prob`` returns 2 numbers per grid point, ``(100, 100, 2)``, and
    ``contourf`` refuses it. ``TransformedDistribution`` reinterprets that batch
    dimension as an event dimension (our transforms act on vectors), which is why the
    five examples are fine; for the base, ``dist.Independent(base_dist, 1)`` would be.
    """
    ns = blog_namespace()
    X, _ = grid(4.0, 100)
    assert ns["base_dist"].log_prob(X).shape == (100, 100, 2)
    with pytest.raises(TypeError):
        exec(BLOG_BASE_PLOT, ns)
    fixed = BLOG_BASE_PLOT.replace(
        "plot_dist(base_dist", "plot_dist(dist.Independent(base_dist, 1)"
    )
    exec(fixed, ns)


def grid(half_width: float, n: int, dtype=torch.float32) -> tuple[torch.Tensor, float]:
    """An ``(n, n, 2)`` grid over ``[-half_width, half_width]^2`` and the area of one cell."""
    t = torch.linspace(-half_width, half_width, n, dtype=dtype)
    return torch.stack(torch.meshgrid(t, t, indexing="ij"), dim=-1), (t[1] - t[0]).item() ** 2


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.filterwarnings("ignore::UserWarning")  # blog post: meshgrid without indexing; plt.show
@pytest.mark.parametrize("name", list(BLOG_EXAMPLES))
def test_blog_example_fails_clearly_and_the_suggested_code_works(name):
    build, rest = BLOG_EXAMPLES[name]
    error, explanation, expected_fix = BLOG_ERRORS[name]
    torch.manual_seed(0)
    ns = blog_namespace()
    with pytest.raises(error, match=re.compile(explanation, re.S)) as info:
        exec(build + rest, ns)
    fix = written_instead(str(info.value))
    assert fix == expected_fix
    # run the example again with the suggested code in place of the blog post's
    variable = build.split(" = ")[0]
    if name in ("coupling", "autoregressive"):
        # the blog post's plot_dist hands log_prob to matplotlib, which refuses tensors that
        # require grad: with a trainable network, plot under no_grad
        rest = "with torch.no_grad():\n" + "".join(f"    {line}\n" for line in rest.splitlines())
    exec(f"{variable} = {fix}\n{rest}", ns)
    transformed = ns[f"{name}_dist"]
    assert type(transformed.transforms[0]).__name__ == fix[2 : fix.index("(")]
    with torch.no_grad():
        # the blog post's own grid: finite log-density everywhere (these densities are positive)
        X, _ = grid(4.0, 100)
        log_p = transformed.log_prob(X)
        assert log_p.shape == (100, 100)
        assert torch.isfinite(log_p).all()
        # a box large enough to hold the mass: the density integrates to 1
        big, cell = grid(30.0, 601)
        total = transformed.log_prob(big).double().exp().sum().item() * cell
        assert total == pytest.approx(1.0, abs=2e-3)
        samples = transformed.sample((500,))
        assert samples.shape == (500, 2) and torch.isfinite(samples).all()
        assert torch.isfinite(transformed.log_prob(samples)).all()


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("affine", TypeError, r"unexpected keyword argument 'scale_tril'"),
        ("planar", AttributeError, r"has no attribute 'PlanarTransform'"),
        ("radial", AttributeError, r"has no attribute 'RadialTransform'"),
        ("coupling", AttributeError, r"has no attribute 'CouplingTransform'"),
        ("autoregressive", AttributeError, r"has no attribute 'AutoregressiveTransform'"),
    ],
)
def test_with_torch_itself_the_blog_post_does_not_run(name, error, match):
    """Errata 1: with the blog post's own import, none of the five examples runs."""
    ns = {"torch": torch, "T": torch.distributions.transforms}
    with pytest.raises(error, match=match):
        exec(BLOG_EXAMPLES[name][0], ns)


# --- the adapter: every layer of the registry as a Transform, in float64 ------------------------


def gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize(("case", "dim", "seed"), registry.CASES)
def test_every_layer_as_a_transform(case, dim, seed):
    """``LayerTransform(layer)`` is the layer as a Transform: map, ladj, inverse, density."""
    layer = registry.build(case, dim, seed)
    t = T.LayerTransform(layer)
    assert isinstance(t, D.Transform) and t.bijective and t.event_dim == 1 and t.inv.inv is t
    z = registry.inputs(case, dim)
    x = t(z)
    assert torch.equal(x, layer(z)[0])
    # ladj from z or from x, against autograd
    ladj = autograd_ladj(t, z)
    assert gap(t.log_abs_det_jacobian(z, x), ladj) < 1e-9
    from_x = T.LayerTransform(layer, ladj_from="x")
    assert gap(from_x.log_abs_det_jacobian(z, x), ladj) < 1e-9
    # round trip by the layer's inverse, and the inverse's ladj against autograd
    z_back = t.inv(x)
    assert gap(z_back, z) < 1e-9
    inverse_ladj = autograd_ladj(t.inv, x)
    assert gap(t.inv.log_abs_det_jacobian(x, z_back), inverse_ladj) < 1e-9
    # the density: base log-prob + the inverse's ladj, as the layer computes them
    base = D.Normal(torch.zeros(dim, dtype=F64), torch.ones(dim, dtype=F64))
    flow = D.TransformedDistribution(base, [t])
    assert flow.event_shape == (dim,) and flow.batch_shape == ()
    z_layer, ladj_layer = layer.inverse(x)
    assert gap(flow.log_prob(x), base.log_prob(z_layer).sum(-1) + ladj_layer) < 1e-9


def test_the_adapter_keeps_nothing_between_calls():
    """After an optimizer-like in-place step, the same data tensor gets a fresh answer."""
    w = f64([0.5, -0.2])
    planar = T.PlanarTransform(f64([1.0, 0.5]), w, f64(0.3))
    coupling = T.CouplingTransform([1, 0], randomized(nn.Linear(1, 2)))
    z = points(4, 2)
    for t, param in ((planar, w), (coupling, coupling.transform_net.weight)):
        x = t(z)
        before = t.inv(x)
        with torch.no_grad():
            param.mul_(0.9)
        assert gap(t.inv(x), before) > 1e-3


# --- every named transform, far from the identity, in float64 -----------------------------------


def randn(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(shape, generator=g, dtype=F64)).requires_grad_()


def randomized(net: nn.Module, std: float = 0.5, seed: int = 0) -> nn.Module:
    net = net.double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(std * torch.randn(p.shape, generator=g, dtype=F64))
    return net


def f64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=F64, requires_grad=True)


def _tril(seed: int) -> torch.Tensor:
    L = torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=F64).tril()
    return (L + torch.diag(torch.tensor([1.5, -2.0, 0.7], dtype=F64))).requires_grad_()


def _reversed_made(dim: int) -> nn.Module:
    return randomized(MADE(dim, hidden=(16, 16), order=torch.arange(dim, 0, -1)), seed=3)


# name: () -> (transform, its tensor parameters); the 2-D ones also integrate to 1 on a grid.
# Coupling and MAF in 2-D with default networks: the blog post's examples and the registry's.
CASES = {
    "affine-scale": lambda: (
        T.AffineTransform(loc := randn(2, seed=1), scale := randn(2, seed=2) + 1.5),
        [loc, scale],
    ),
    "affine-scale-scalar": lambda: (
        T.AffineTransform(loc := randn(3, seed=1), torch.tensor(-1.7, dtype=F64)),
        [loc],
    ),
    "affine-tril": lambda: (
        T.AffineTransform(loc := randn(3, seed=1), scale_tril=(L := _tril(4))),
        [loc, L],
    ),
    "affine-matrix": lambda: (
        T.AffineTransform(loc := randn(2, seed=1), matrix=(A := randn(2, 2, seed=5, scale=1.5))),
        [loc, A],
    ),
    "planar": lambda: (
        T.PlanarTransform(u := f64([1.2, -0.4]), w := f64([-0.3, 1.3]), b := f64([0.4])),
        [u, w, b],
    ),
    "planar-D3": lambda: (
        T.PlanarTransform(
            u := f64([0.5, 1.0, -0.8]), w := f64([1.5, 0.2, 1.1]), b := randn(seed=8)
        ),
        [u, w, b],
    ),
    "planar-constrained": lambda: (  # raw w.u = -1.2: only valid through constrain_u
        T.PlanarTransform(
            u := f64([-1.0, -0.4]),
            w := f64([1.0, 0.5]),
            b := f64(0.3),
            constrain=True,
        ),
        [u, w, b],
    ),
    "radial-expand": lambda: (
        T.RadialTransform(
            z0 := randn(2, seed=10),
            a := randn(1, seed=11).abs(),
            c := torch.tensor([2.0], dtype=F64, requires_grad=True),
        ),
        [z0, a, c],
    ),
    "radial-contract-D3": lambda: (
        T.RadialTransform(
            z0 := randn(3, seed=10),
            a := torch.tensor(0.8, dtype=F64, requires_grad=True),
            c := torch.tensor(-0.6, dtype=F64, requires_grad=True),
        ),
        [z0, a, c],
    ),
    "coupling-D3": lambda: (
        t := T.CouplingTransform(
            [0, 1, 1], randomized(nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)))
        ),
        list(t.transform_net.parameters()),
    ),
    "autoregressive-D3-reversed": lambda: (
        t := T.AutoregressiveTransform(_reversed_made(3)),
        list(t.transform_net.parameters()),
    ),
}
IDS = list(CASES)


def points(n: int, dim: int, seed: int = 20) -> torch.Tensor:
    return 1.5 * torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("name", IDS)
def test_round_trip_and_ladj_against_autograd(name):
    t, _ = CASES[name]()
    assert isinstance(t, T.LayerTransform)
    with torch.no_grad():
        z = points(12, t.dim)
    x = t(z)
    # clones: tensors t has not seen, so that it computes instead of recalling (LayerTransform)
    assert (t.inv(x) - z).abs().max() < 1e-10
    assert (t(t.inv(z)) - z).abs().max() < 1e-10  # inverse then forward, too
    ladj = t.log_abs_det_jacobian(z, x)
    assert ladj.shape == (12,)
    assert (ladj - autograd_ladj(t, z)).abs().max() < 1e-10
    assert (ladj + autograd_ladj(t.inv, x)).abs().max() < 1e-10
    assert (x - z).abs().max() > 0.1  # not near the identity: a sign error would show


@pytest.mark.parametrize("name", IDS)
def test_shapes_and_batch_independence(name):
    t, _ = CASES[name]()
    with torch.no_grad():
        z = points(100 * 100, t.dim).reshape(100, 100, t.dim)
        x = t(z)
        assert x.shape == z.shape and t.inv(x).shape == z.shape
        ladj = t.log_abs_det_jacobian(z, x)
        assert ladj.shape == (100, 100)
        one = z[3, 7]  # a single point (D,) and a batch (N, D) give the same numbers
        assert torch.allclose(t(one), x[3, 7], atol=1e-12)
        assert torch.allclose(t.log_abs_det_jacobian(one, t(one)), ladj[3, 7], atol=1e-12)
        assert torch.allclose(t(z[0]), x[0], atol=1e-12)


@pytest.mark.parametrize("name", IDS)
def test_gradients_reach_every_parameter(name):
    t, params = CASES[name]()
    assert params and all(p.requires_grad for p in params)
    base = D.Normal(torch.zeros(t.dim, dtype=F64), torch.ones(t.dim, dtype=F64))
    flow = D.TransformedDistribution(base, [t])
    for loss in (  # density of data (inverse + ladj), and reparameterized samples (forward)
        lambda: flow.log_prob(points(5, t.dim)).sum(),
        lambda: flow.rsample((5,)).pow(2).sum(),
    ):
        grads = torch.autograd.grad(loss(), params, allow_unused=True)
        for g in grads:
            assert g is not None and torch.isfinite(g).all(), name
        assert any(g.abs().max() > 0 for g in grads), name


@pytest.mark.parametrize("name", [n for n in IDS if CASES[n]()[0].dim == 2])
def test_density_integrates_to_one(name):
    t, _ = CASES[name]()
    flow = D.TransformedDistribution(
        D.Normal(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64)), [t]
    )
    X, cell = grid(30.0, 1201, F64)  # wide: room for every case's tails
    with torch.no_grad():
        total = flow.log_prob(X).exp().sum().item() * cell
    assert total == pytest.approx(1.0, abs=1e-3)


def test_affine_forms_agree():
    """``scale``, ``scale_tril`` and ``matrix`` are the same map for the same (diagonal) A."""
    loc, s = torch.tensor([0.5, -1.0], dtype=F64), torch.tensor([2.0, -0.5], dtype=F64)
    forms = [
        T.AffineTransform(loc, s),
        T.AffineTransform(loc, scale_tril=torch.diag(s)),
        T.AffineTransform(loc, matrix=torch.diag(s)),
    ]
    z = points(7, 2)
    for t in forms:
        assert torch.allclose(t(z), loc + s * z)
        assert torch.allclose(t.inv(t(z)), z)
        expected = torch.full((7,), torch.log(s.abs()).sum().item(), dtype=F64)
        assert torch.allclose(t.log_abs_det_jacobian(z, t(z)), expected)


def test_blog_matrix_and_its_cholesky_give_the_same_gaussian():
    """The two fixes the affine error offers: the same N(0, A A^T), by different maps."""
    A = torch.tensor([[2.0, -2.0], [2.0, 2.0]], dtype=F64)
    base = D.Normal(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64))
    x = points(10, 2)
    target = D.MultivariateNormal(torch.zeros(2, dtype=F64), A @ A.T).log_prob(x)
    for t in (
        T.AffineTransform(torch.zeros(2, dtype=F64), matrix=A),
        T.AffineTransform(torch.zeros(2, dtype=F64), scale_tril=torch.linalg.cholesky(A @ A.T)),
    ):
        assert torch.allclose(D.TransformedDistribution(base, [t]).log_prob(x), target)


def test_autoregressive_accepts_any_order_and_a_hand_masked_net():
    """The check asks for *some* order, not 1..D: a net autoregressive in 2, 1 passes."""

    class Reversed(nn.Module):  # shift_1 and log-scale_1 from x_2; those of x_2 constant
        def __init__(self):
            super().__init__()
            self.lin = MaskedLinear(torch.tensor([[0, 1], [0, 0], [0, 1], [0, 0]]))

        def forward(self, x):
            return self.lin(x)

    net = randomized(Reversed())
    t = T.AutoregressiveTransform(net)  # D from the first Linear layer
    assert t.dim == 2
    z = points(6, 2)
    assert (t.inv(t(z)) - z).abs().max() < 1e-12
    assert (t.log_abs_det_jacobian(z, t(z)) - autograd_ladj(t, z)).abs().max() < 1e-12


def test_maf_net_argument():
    made = randomized(MADE(2, hidden=(8,)))
    maf = MAF(2, net=made)
    assert maf.made is made
    default = MAF(2, hidden=(8,)).double()
    default.made.load_state_dict(made.state_dict())
    z = points(5, 2)
    assert torch.equal(maf(z)[0], default(z)[0]) and torch.equal(maf(z)[1], default(z)[1])
    with pytest.raises(TypeError, match=r"MAF: `net` must be a torch.nn.Module built once"):
        MAF(2, net=lambda x: x)


# --- bad arguments: clear errors, and the suggested code runs ----------------------------------


def _seq(*sizes: int, dropout: float = 0.0) -> nn.Sequential:
    layers = [nn.Linear(sizes[0], sizes[1])]
    for a, b in zip(sizes[1:-1], sizes[2:], strict=True):
        layers += [nn.Tanh(), nn.Linear(a, b)]
    return nn.Sequential(*layers, *([nn.Dropout(dropout)] if dropout else []))


def calls(net: nn.Module):
    """A function (not a module) that calls the same network every time."""
    return lambda x: net(x)


class NewNetEachCall(nn.Module):
    def forward(self, x):
        return nn.Linear(x.shape[-1], 2 * x.shape[-1])(x)


t2 = torch.tensor
TWO = torch.zeros(2)

BAD = {
    # affine
    "tril-not-triangular": (
        lambda: T.AffineTransform(TWO, scale_tril=t2([[1.0, 0.5], [0.0, 1.0]])),
        ValueError,
        r"`scale_tril` must be lower-triangular.*entry \[0, 1\] = 0.5 lies above the diagonal"
        r".*Write instead:\n    T.AffineTransform\(loc=torch.zeros\(2\), matrix=",
    ),
    "tril-not-triangular-singular": (
        lambda: T.AffineTransform(TWO, scale_tril=t2([[1.0, 2.0], [1.0, 2.0]])),
        ValueError,
        r"`scale_tril` must be lower-triangular.*Moreover it is singular",
    ),
    "tril-zero-diagonal": (
        lambda: T.AffineTransform(TWO, scale_tril=t2([[1.0, 0.0], [3.0, 0.0]])),
        ValueError,
        r"diagonal of `scale_tril` must be nonzero, got \[1.0, 0.0\].*singular",
    ),
    "matrix-singular": (
        lambda: T.AffineTransform(TWO, matrix=t2([[1.0, 2.0], [2.0, 4.0]])),
        ValueError,
        r"`matrix` = \[\[1.0, 2.0\], \[2.0, 4.0\]\] is not invertible.*no density",
    ),
    "matrix-not-square": (
        lambda: T.AffineTransform(TWO, matrix=torch.ones(2, 3)),
        ValueError,
        r"`matrix` must be a square matrix of shape \(D, D\), got shape \(2, 3\)",
    ),
    "scale-zero": (
        lambda: T.AffineTransform(TWO, t2([1.0, 0.0])),
        ValueError,
        r"every entry of `scale` must be nonzero, got \[1.0, 0.0\]",
    ),
    "scale-matrix": (
        lambda: T.AffineTransform(TWO, torch.eye(2)),
        ValueError,
        r"`scale` is elementwise and must have shape \(\) or \(D,\), got shape \(2, 2\).*matrix=",
    ),
    "no-scale": (
        lambda: T.AffineTransform(TWO),
        ValueError,
        r"pass exactly one of `scale`.*`scale_tril`.*`matrix`.*got none",
    ),
    "two-scales": (
        lambda: T.AffineTransform(TWO, scale=torch.ones(2), matrix=torch.eye(2)),
        ValueError,
        r"pass exactly one of.*got scale, matrix",
    ),
    "loc-shape": (
        lambda: T.AffineTransform(torch.zeros(3), matrix=torch.eye(2)),
        ValueError,
        r"`loc` must have shape \(2,\) or \(\), got shape \(3,\)",
    ),
    "loc-not-tensor": (
        lambda: T.AffineTransform("0", matrix=torch.eye(2)),
        TypeError,
        r"`loc` must be a torch.Tensor, got str",
    ),
    "matrix-nan": (
        lambda: T.AffineTransform(TWO, matrix=t2([[1.0, float("nan")], [0.0, 1.0]])),
        ValueError,
        r"`matrix` must be finite",
    ),
    # planar
    "planar-w-shape": (
        lambda: T.PlanarTransform(t2([1.0, 2.0, 3.0]), t2([1.0, 1.0]), t2(0.0)),
        ValueError,
        r"`w` must have shape \(3,\), the shape of `u`.*got shape \(2,\)(?!.*It is also zero)"
        r".*Write instead:\n    T.PlanarTransform\(u=torch.tensor\(\[1.0, 2.0, 3.0\]\), "
        r"w=torch.tensor\(\[1.0, 2.0, 3.0\]\)",
    ),
    "planar-u-matrix": (
        lambda: T.PlanarTransform(torch.ones(2, 2), TWO, t2(0.0)),
        ValueError,
        r"`u` must have shape \(D,\), one entry per coordinate, got shape \(2, 2\)",
    ),
    "planar-b-vector": (
        lambda: T.PlanarTransform(torch.ones(2), torch.ones(2), TWO),
        ValueError,
        r"`b` must be a scalar tensor \(shape \(\) or \(1,\)\), got shape \(2,\)",
    ),
    "planar-wu-minus-1": (
        lambda: T.PlanarTransform(t2([-1.0, 0.0]), t2([1.0, 0.0]), t2([0.0])),
        ValueError,
        r"invertible only if w.u > -1, got w.u = -1\b.*constrain_u.*"
        r"Write instead:\n    T.PlanarTransform\(.*constrain=True\)",
    ),
    "planar-wu-below": (
        lambda: T.PlanarTransform(t2([-3.0, 1.0]), t2([1.0, 0.5]), t2(0.2)),
        ValueError,
        r"invertible only if w.u > -1, got w.u = -2.5.*folds space",
    ),
    # radial
    "radial-alpha-negative": (
        lambda: T.RadialTransform(TWO, t2([-0.5]), t2([1.0])),
        ValueError,
        r"`alpha` must be > 0.*got alpha = -0.5.*infinite at r = 0.5.*Write instead:\n"
        r"    T.RadialTransform\(z0=torch.zeros\(2\), alpha=torch.tensor\(\[0.5\]\), "
        r"beta=torch.tensor\(\[1.0\]\)\)",
    ),
    "radial-alpha-zero-beta-negative": (
        lambda: T.RadialTransform(TWO, t2(0.0), t2(-0.5)),
        ValueError,
        r"got alpha = 0.*within \|beta\| = 0.5 of z0 are folded through it.*Write instead:\n"
        r"    T.RadialTransform\(z0=torch.zeros\(2\), alpha=torch.tensor\(1.0\), "
        r"beta=torch.tensor\(-0.5\)\)",
    ),
    "radial-beta-below": (
        lambda: T.RadialTransform(TWO, t2(1.0), t2(-2.0)),
        ValueError,
        r"invertible only if beta >= -alpha, got beta = -2 < -alpha = -1.*"
        r"beta=torch.tensor\(-0.5\)",
    ),
    "radial-alpha-shape": (
        lambda: T.RadialTransform(TWO, torch.ones(2), t2(1.0)),
        ValueError,
        r"`alpha` must be a scalar tensor \(shape \(\) or \(1,\)\), got shape \(2,\)",
    ),
    "radial-z0-shape": (
        lambda: T.RadialTransform(t2(0.0), t2(1.0), t2(1.0)),
        ValueError,
        r"`z0` must have shape \(D,\).*got shape \(\)",
    ),
    # coupling
    "coupling-deterministic-lambda": (
        lambda: T.CouplingTransform(t2([1, 0]), calls(_seq(1, 2))),
        TypeError,
        r"must be a torch.nn.Module built once, got a lambda. A function hides the network's "
        r"parameters.*Write instead:\n    T.CouplingTransform\(mask=torch.tensor\(\[1, 0\]\), "
        r"transform_net=torch.nn.Sequential\(torch.nn.Linear\(1, 2\)\)\)",
    ),
    "coupling-wrong-output": (
        lambda: T.CouplingTransform(t2([1, 0, 0]), nn.Linear(1, 3)),
        ValueError,
        r"`transform_net` must map \(\.\.\., 1\) \(the coordinates with mask 1\) to \(\.\.\., 4\)"
        r".*maps input of shape \(8, 1\) to \(8, 3\).*Write instead:",
    ),
    "coupling-wrong-input": (
        lambda: T.CouplingTransform(t2([1, 0]), _seq(2, 8, 2)),
        ValueError,
        r"`transform_net` must map \(\.\.\., 1\).*fails on input of shape \(8, 1\)",
    ),
    "coupling-new-net-each-call": (
        lambda: T.CouplingTransform(t2([1, 0]), NewNetEachCall()),
        ValueError,
        r"different outputs for the same input on two calls",
    ),
    "coupling-dropout": (
        lambda: T.CouplingTransform(t2([1, 0]), _seq(1, 8, 2, dropout=0.5)),
        ValueError,
        r"different outputs.*dropout in training mode",
    ),
    "coupling-bad-mask": (
        lambda: T.CouplingTransform(t2([1, 1]), _seq(2, 2)),
        ValueError,
        r"CouplingTransform: `mask` must contain at least one 1 and at least one 0",
    ),
    # autoregressive
    "ar-blog-mlp-module": (
        lambda: T.AutoregressiveTransform(_seq(2, 2, 2)),
        ValueError,
        r"must be autoregressive, mapping \(\.\.\., 2\) to \(\.\.\., 4\).*returns 2 values per "
        r"point, not 2 \* D = 4.*errata 7.*Write instead:\n    "
        r"T.AutoregressiveTransform\(transform_net=T.MADE\(2, hidden=\(16,\)\)\)",
    ),
    "ar-dense-right-size": (
        lambda: T.AutoregressiveTransform(nn.Linear(2, 4)),
        ValueError,
        r"(?!.*values per point).*coordinate\(s\) \[0, 1\] depend on that coordinate itself.*"
        r"0 <- \[0, 1\]; 1 <- \[0, 1\]\) form a cycle.*errata 7",
    ),
    "ar-cycle-without-self": (  # x_1 from x_2 and x_2 from x_1: no diagonal, but a cycle
        lambda: T.AutoregressiveTransform(MaskedLinear(t2([[0, 1], [1, 0], [0, 1], [1, 0]]))),
        ValueError,
        r"(?!.*itself)0 <- \[1\]; 1 <- \[0\]\) form a cycle",
    ),
    "ar-depends-on-itself": (  # no cycle between coordinates, but each sees itself
        lambda: T.AutoregressiveTransform(MaskedLinear(t2([[1, 0], [0, 1], [1, 0], [0, 1]]))),
        ValueError,
        r"coordinate\(s\) \[0, 1\] depend on that coordinate itself(?!.*cycle)",
    ),
    "ar-plain-mlp": (  # the right sizes, but a plain MLP: every output sees every input
        lambda: T.AutoregressiveTransform(mlp(3, 6, hidden=(8,))),
        ValueError,
        r"must be autoregressive.*form a cycle.*T.MADE\(3, hidden=\(16,\)\)",
    ),
    "ar-wrong-size-made": (
        lambda: T.AutoregressiveTransform(MADE(2, hidden=(8,), params=1)),
        ValueError,
        r"returns 2 values per point, not 2 \* D = 4(?!.*cycle)",
    ),
    "ar-new-net-each-call": (
        lambda: T.AutoregressiveTransform(NewNetEachCall(), dim=2),
        ValueError,
        r"different outputs for the same input on two calls",
    ),
    "ar-no-dim": (
        lambda: T.AutoregressiveTransform(nn.Tanh()),
        ValueError,
        r"cannot tell the number of coordinates D.*pass dim=D",
    ),
    "ar-wrong-dim": (
        lambda: T.AutoregressiveTransform(MADE(2, hidden=(8,)), dim=3),
        ValueError,
        r"fails on input of shape \(8, 3\)",
    ),
    "ar-lambda-any-dim": (
        lambda: T.AutoregressiveTransform(lambda x: torch.cat([x, x], -1)),
        TypeError,
        r"got a lambda\. A function hides.*T.MADE\(D, hidden=\(16,\)\), with D your number",
    ),
    "ar-function-with-dim": (
        lambda: T.AutoregressiveTransform(torch.tanh, dim=2),
        TypeError,
        r"got builtin_function_or_method.*Write instead:\n    "
        r"T.AutoregressiveTransform\(transform_net=T.MADE\(2, hidden=\(16,\)\)\)",
    ),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_argument_is_a_clear_error(name):
    make, error, match = BAD[name]
    with pytest.raises(error, match=re.compile(match, re.S)) as info:
        make()
    message = str(info.value)
    assert message.startswith(
        (
            "AffineTransform:",
            "PlanarTransform:",
            "RadialTransform:",
            "CouplingTransform:",
            "AutoregressiveTransform:",
        )
    )
    if "Write instead:" in message and "with D your number" not in message:
        fixed = eval(written_instead(message), {"T": T, "torch": torch})  # the fix runs
        assert isinstance(fixed, torch.distributions.Transform)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: T.AffineTransform(TWO, matrix=torch.eye(2)),
            r"AffineTransform: `[zx]` must have "
            r"shape \(\.\.\., 2\).*got shape \(4, 3\): this transform acts on D = 2",
        ),
        (lambda: T.PlanarTransform(torch.ones(2), torch.ones(2), t2(0.0)), r"shape \(\.\.\., 2\)"),
        (lambda: T.CouplingTransform(t2([1, 0]), _seq(1, 2)), r"shape \(\.\.\., 2\)"),
        (lambda: T.AutoregressiveTransform(MADE(2)), r"shape \(\.\.\., 2\)"),
    ],
)
def test_points_of_the_wrong_size_are_a_clear_error(make, match):
    t = make()
    for step in (t, t.inv):
        with pytest.raises(ValueError, match=match):
            step(torch.zeros(4, 3))
