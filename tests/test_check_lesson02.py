"""The checks of lesson 02: the reference passes, a stub is "not done", typical mistakes get
the right hint (exercise 2.1: an affine layer; exercise 2.2: the maximum-likelihood loop)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nfcourse import check
from nfcourse.course.check import CheckFailed


@pytest.fixture(autouse=True)
def lenient(monkeypatch):
    monkeypatch.delenv("NFCOURSE_STRICT", raising=False)


# --- Exercise 2.1 ------------------------------------------------------------------------------

RIGHT = {
    "x": lambda self, z: z * self.log_scale.exp() + self.shift,
    "ladj": lambda self, z: self.log_scale.sum().expand(z.shape[:-1]),
    "z": lambda self, x: (x - self.shift) * torch.exp(-self.log_scale),
    "ladj_inv": lambda self, x: -self.log_scale.sum().expand(x.shape[:-1]),
}


def affine_class(init=None, **parts):
    """An Affine class built from the reference parts, with some of them replaced."""
    f = {**RIGHT, **parts}

    class Affine(nn.Module):
        def __init__(self, dim):
            super().__init__()
            if init is not None:
                init(self, dim)
            else:
                self.shift = nn.Parameter(torch.zeros(dim))
                self.log_scale = nn.Parameter(torch.zeros(dim))

        def forward(self, z):
            return f["x"](self, z), f["ladj"](self, z)

        def inverse(self, x):
            return f["z"](self, x), f["ladj_inv"](self, x)

    return Affine


class Stub(nn.Module):
    def __init__(self, dim):
        super().__init__()
        raise NotImplementedError("Exercise 2.1: write the layer")


def test_affine_reference_passes():
    assert check.affine_layer(affine_class()).status == "passed"


def test_affine_stub_is_not_done():
    assert check.affine_layer(Stub).status == "not done"


def test_affine_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("NFCOURSE_STRICT", "1")
    assert check.affine_layer(affine_class())
    with pytest.raises(CheckFailed, match="wrong sign"):
        check.affine_layer(affine_class(ladj=lambda self, z: -RIGHT["ladj"](self, z)))


def _plain_tensors(self, dim):
    self.shift = torch.zeros(dim)
    self.log_scale = torch.zeros(dim)


def _scale_parameter(self, dim):
    self.shift = nn.Parameter(torch.zeros(dim))
    self.scale = nn.Parameter(torch.ones(dim))


def _random_init(self, dim):
    self.shift = nn.Parameter(torch.randn(dim))
    self.log_scale = nn.Parameter(torch.randn(dim))


@pytest.mark.parametrize(
    "parts, hint",
    [
        ({"ladj": lambda self, z: -self.log_scale.sum().expand(z.shape[:-1])}, "wrong sign"),
        ({"ladj": lambda self, z: self.log_scale.mean().expand(z.shape[:-1])}, "averaged"),
        ({"ladj": lambda self, z: self.log_scale.expand_as(z)}, "per coordinate"),
        ({"ladj": lambda self, z: self.log_scale.sum()}, "expand it to the batch"),
        ({"ladj": lambda self, z: self.log_scale}, "expand it to the batch"),
        ({"ladj": lambda self, z: self.log_scale.sum().expand(z.shape[0])}, "last dimension"),
        ({"ladj": lambda self, z: self.log_scale.exp().sum().expand(z.shape[:-1])},
         "summed the scales"),
        ({"x": lambda self, z: z * self.log_scale + self.shift,
          "z": lambda self, x: (x - self.shift) / self.log_scale}, "not by log_scale"),
        ({"x": lambda self, z: (z - self.shift) * torch.exp(-self.log_scale)},
         "normalizing direction"),
        ({"x": lambda self, z: (z + self.shift) * self.log_scale.exp()}, "scale first"),
        ({"z": lambda self, x: (x - self.shift) * self.log_scale.exp()}, "divide by the scale"),
        ({"z": lambda self, x: x * torch.exp(-self.log_scale) - self.shift},
         "subtract the shift first"),
        ({"ladj_inv": lambda self, x: self.log_scale.sum().expand(x.shape[:-1])},
         "minus the forward one"),
        ({"x": lambda self, z: z * self.log_scale.detach().exp() + self.shift.detach()},
         "not .data"),
        ({"init": _plain_tensors}, "nn.Parameter"),
        ({"init": _scale_parameter}, "log of the scale"),
        ({"init": _random_init}, "zeros"),
        ({"x": lambda self, z: (z * self.log_scale.exp() + self.shift).sum(-1)},
         "x must have the shape"),
        ({"forward": "one"}, "pair of tensors"),
    ],
)
def test_affine_mistakes_get_their_hint(parts, hint):
    parts = dict(parts)
    init = parts.pop("init", None)
    if parts.pop("forward", None):
        cls = affine_class(init)
        cls.forward = lambda self, z: z
    else:
        cls = affine_class(init, **parts)
    result = check.affine_layer(cls)
    assert result.status == "failed"
    assert hint in result.message + " " + result.hint, result.line


def test_affine_misspelt_forward_is_a_failure_not_work_to_do():
    cls = affine_class()
    cls.foward, cls.forward = cls.forward, nn.Module.forward
    result = check.affine_layer(cls)
    assert result.status == "failed", result.line
    assert "check the spelling of your method names" in result.hint


def test_affine_instance_instead_of_class():
    result = check.affine_layer(affine_class()(3))
    assert result.status == "failed" and "pass the class" in result.hint


# --- Exercise 2.2 ------------------------------------------------------------------------------


def make_train(objective="nll", zero_grad=True, record="loss", batch="random", step=True,
               fixed_lr=None, returns=True, optim="adam"):
    """The reference loop, with one of its typical mistakes switched on."""
    kinds = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}

    def train(flow, data, steps, lr, batch_size=64):
        make = kinds[optim.removesuffix(" each step")]
        optimizer = make(flow.parameters(), lr=fixed_lr or lr)
        losses = []
        for _ in range(steps):
            if optim.endswith(" each step"):
                optimizer = make(flow.parameters(), lr=fixed_lr or lr)
            if batch == "random":
                x = data[torch.randint(len(data), (batch_size,))]
            elif batch == "all":
                x = data
            elif batch == "randint(batch_size)":
                x = data[torch.randint(batch_size, (batch_size,))]
            elif batch == "randint(len - 1)":
                x = data[torch.randint(len(data) - 1, (batch_size,))]
            elif batch == "second half":
                x = data[torch.randint(len(data) // 2, len(data), (batch_size,))]
            else:
                x = data[:batch_size]
            log_p = flow.log_prob(x)
            loss = {"nll": -log_p.mean(), "loglik": log_p.mean(), "sum": -log_p.sum()}[objective]
            if zero_grad:
                optimizer.zero_grad()
            loss.backward()
            if step:
                optimizer.step()
            losses.append(-loss.item() if record == "negated" else loss.item())
        if returns:
            return losses

    return train


def train_stub(flow, data, steps, lr, batch_size=64):
    raise NotImplementedError("Exercise 2.2: write the loop")


def test_train_reference_passes():
    result = check.train_loop(make_train())
    assert result.status == "passed", result.line


def test_train_stub_is_not_done():
    assert check.train_loop(train_stub).status == "not done"


def test_train_without_batch_size_argument_is_accepted():
    reference = make_train()

    def train(flow, data, steps, lr):
        return reference(flow, data, steps, lr)

    assert check.train_loop(train).status == "passed"


def test_train_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("NFCOURSE_STRICT", "1")
    with pytest.raises(CheckFailed, match="zero_grad"):
        check.train_loop(make_train(zero_grad=False))


@pytest.mark.parametrize(
    "kwargs, hint",
    [
        ({"objective": "loglik"}, "without the minus sign"),
        ({"zero_grad": False}, "optimizer.zero_grad()"),
        ({"objective": "sum"}, "not `.sum()`"),
        ({"returns": False}, "return losses"),
        ({"record": "negated"}, "not the log-likelihood"),
        ({"batch": "all"}, "draw a minibatch"),
        ({"batch": "first"}, "new random minibatch"),
        ({"step": False}, "optimizer.step()"),
        ({"fixed_lr": 1e-3}, "pass `lr` to the optimizer"),
        ({"optim": "sgd"}, "use Adam, as the exercise asks"),
        ({"optim": "adamw"}, "use Adam, as the exercise asks"),
        ({"optim": "adam each step"}, "create the optimizer once, before the loop"),
        ({"batch": "randint(batch_size)"}, "not batch_size or a fixed number"),
        ({"batch": "randint(len - 1)"}, "without a - 1"),
        ({"batch": "second half"}, "draw each minibatch from all the rows"),
    ],
)
def test_train_mistakes_get_their_hint(kwargs, hint):
    result = check.train_loop(make_train(**kwargs))
    assert result.status == "failed"
    assert hint in result.hint, result.line


def test_train_messages_name_the_optimizer_and_the_data_used():
    assert "trained with SGD" in check.train_loop(make_train(optim="sgd")).message
    result = check.train_loop(make_train(optim="adam each step"))
    assert "150 different Adam optimizers" in result.message, result.line
    result = check.train_loop(make_train(batch="randint(batch_size)"))
    assert "only the first 64 of the 256 rows" in result.message, result.line


def test_train_without_an_optimizer():
    def train(flow, data, steps, lr, batch_size=64):
        losses = []
        for _ in range(steps):
            loss = -flow.log_prob(data[torch.randint(len(data), (batch_size,))]).mean()
            flow.zero_grad()
            loss.backward()
            with torch.no_grad():
                for p in flow.parameters():
                    p -= lr * p.grad
            losses.append(loss.item())
        return losses

    result = check.train_loop(train)
    assert result.status == "failed" and "no torch.optim optimizer" in result.message


def test_train_wrong_number_of_losses():
    reference = make_train()

    def train(flow, data, steps, lr, batch_size=64):
        return reference(flow, data, steps, lr, batch_size)[::10]

    result = check.train_loop(train)
    assert result.status == "failed" and "one recorded loss per step" in result.hint


def test_train_check_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check.train_loop(make_train())
    assert torch.equal(torch.rand(3), expected)
