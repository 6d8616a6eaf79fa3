"""Checks of lesson 05: the reference passes, a stub is "not done", mistakes get their hint."""

from __future__ import annotations

import time

import pytest
import torch
from check_support import not_strict  # noqa: F401 (not_strict: an autouse fixture)

from nfcourse.course.check import CheckFailed, lesson05

# --- Exercise 5.1: MADE's masks ---------------------------------------------------------------


def masks_with(hidden_op, output_op):
    def made_masks(degrees):
        masks = []
        for k, (d_in, d_out) in enumerate(zip(degrees[:-1], degrees[1:], strict=True)):
            op = output_op if k == len(degrees) - 2 else hidden_op
            masks.append(op(d_out[:, None], d_in[None, :]).float())
        return masks

    return made_masks


made_masks_reference = masks_with(torch.ge, torch.gt)


def made_masks_stub(degrees):
    raise NotImplementedError("Exercise 5.1: build MADE's masks from the degrees")


def made_masks_transposed(degrees):
    return [m.T for m in made_masks_reference(degrees)]


def made_masks_bool(degrees):
    return [m.bool() for m in made_masks_reference(degrees)]


def made_masks_without_output(degrees):
    return made_masks_reference(degrees)[:-1]


def made_masks_stacked(degrees):
    return made_masks_reference(degrees)[0]


def made_masks_one_extra_connection(degrees):
    masks = made_masks_reference(degrees)
    masks[0][0, -1] = 1.0  # a hidden unit of degree 1 also sees the last input
    return masks


def made_masks_one_cut_connection(degrees):
    masks = made_masks_reference(degrees)
    masks[-1][-1, :] = 0.0  # the last output sees nothing
    return masks


def test_made_masks_reference_passes():
    result = lesson05.made_masks(made_masks_reference)
    assert result.status == "passed", result.line
    assert "strictly lower-triangular" in result.message
    assert lesson05.made_masks(made_masks_bool)  # bool masks are fine too


def test_made_masks_stub_is_not_done():
    assert lesson05.made_masks(made_masks_stub).status == "not done"


@pytest.mark.parametrize(
    ("learner", "hint"),
    [
        (masks_with(torch.ge, torch.ge), "output layer must compare strictly"),
        (masks_with(torch.gt, torch.gt), "hidden layers must compare with >="),
        (masks_with(torch.gt, torch.ge), "the two rules are swapped"),
        (masks_with(torch.le, torch.lt), "points the wrong way"),
        (made_masks_transposed, "the mask is transposed"),
        (made_masks_without_output, "one mask per pair of consecutive layers"),
        (made_masks_stacked, "return a Python list"),
        (made_masks_one_extra_connection, "strict > at the output layer"),
        (made_masks_one_cut_connection, "an allowed connection is cut"),
    ],
    ids=[
        "output >=", "hidden >", "swapped", "reversed", "transposed", "missing mask",
        "a tensor", "extra connection", "cut connection",
    ],
)
def test_made_masks_mistakes_get_their_hint(learner, hint):
    result = lesson05.made_masks(learner)
    assert result.status == "failed"
    assert hint in result.hint, result.line


# --- Exercise 5.2: MAF's sampling loop -----------------------------------------------------------


def maf_sample_reference(made, z):
    x = torch.zeros_like(z)
    for _ in range(z.shape[-1]):
        shift, log_scale = made(x).chunk(2, dim=-1)
        x = z * log_scale.exp() + shift
    return x, log_scale.sum(-1)


def maf_sample_stub(made, z):
    raise NotImplementedError("Exercise 5.2: MAF's sampling loop")


def maf_sample_from_z_start(made, z):  # the starting x does not matter
    x = z.clone()
    for _ in range(z.shape[-1]):
        shift, log_scale = made(x).chunk(2, dim=-1)
        x = z * log_scale.exp() + shift
    return x, log_scale.sum(-1)


def maf_sample_by_degree(made, z):  # one coordinate per pass, in the network's order
    x = torch.zeros_like(z)
    for i in made.order.argsort().tolist():
        shift, log_scale = made(x).chunk(2, dim=-1)
        x = x.clone()
        x[:, i] = z[:, i] * log_scale[:, i].exp() + shift[:, i]
    shift, log_scale = made(x).chunk(2, dim=-1)
    return x, log_scale.sum(-1)


@torch.no_grad()
def maf_sample_no_grad(made, z):
    return maf_sample_reference(made, z)


def loop(made, z, passes, step, feed="x", ladj="last"):
    x = torch.zeros_like(z)
    total, first = 0, None
    for _ in range(passes):
        shift, log_scale = made(z if feed == "z" else x).chunk(2, dim=-1)
        first = log_scale if first is None else first
        total = total + log_scale
        x = step(z, shift, log_scale)
    chosen = {"last": log_scale, "-last": -log_scale, "all": total, "first": first}[ladj]
    return x, chosen.sum(-1)


def right(z, m, s):
    return z * s.exp() + m


def mistake(passes=None, step=right, feed="x", ladj="last"):
    return lambda made, z: loop(made, z, passes or z.shape[-1], step, feed, ladj)


def maf_sample_index_order(made, z):
    x = torch.zeros_like(z)
    for i in range(z.shape[-1]):
        shift, log_scale = made(x).chunk(2, dim=-1)
        x = x.clone()
        x[:, i] = z[:, i] * log_scale[:, i].exp() + shift[:, i]
    return x, log_scale.sum(-1)


def maf_sample_over_the_batch(made, z):
    """Loops len(z) times (the number of points) instead of z.shape[-1] (the coordinates)."""
    x = torch.zeros_like(z)
    for _ in range(len(z)):
        shift, log_scale = made(x).chunk(2, dim=-1)
        x = z * log_scale.exp() + shift
    return x, log_scale.sum(-1)


def maf_sample_point_by_point(made, z):
    """One point at a time, one pass each."""
    rows = []
    for n in range(z.shape[0]):
        shift, log_scale = made(torch.zeros_like(z[n : n + 1])).chunk(2, dim=-1)
        rows.append((z[n : n + 1] * log_scale.exp() + shift, log_scale.sum(-1)))
    return torch.cat([r[0] for r in rows]), torch.cat([r[1] for r in rows])


def maf_sample_reversed(made, z):
    """Fills the last coordinate first."""
    x = torch.zeros_like(z)
    for i in reversed(range(z.shape[-1])):
        shift, log_scale = made(x).chunk(2, dim=-1)
        x = x.clone()
        x[:, i] = z[:, i] * log_scale[:, i].exp() + shift[:, i]
    shift, log_scale = made(x).chunk(2, dim=-1)
    return x, log_scale.sum(-1)


def maf_sample_reset_each_pass(made, z):
    """Starts again from zeros inside the loop: every pass sees the same x."""
    for _ in range(z.shape[-1]):
        x = torch.zeros_like(z)
        shift, log_scale = made(x).chunk(2, dim=-1)
        x = z * log_scale.exp() + shift
    return x, log_scale.sum(-1)


def maf_sample_ladj_over_batch(made, z):
    x, _ = maf_sample_reference(made, z)
    _, log_scale = made(x).chunk(2, dim=-1)
    return x, log_scale.sum(0)


def maf_sample_returns_x_only(made, z):
    return maf_sample_reference(made, z)[0]


def maf_sample_in_place(made, z):
    x, ladj = maf_sample_reference(made, z)
    z.mul_(1.0)  # harmless, but writes into z
    z[0, 0] = 0.0
    return x, ladj


def test_maf_sample_reference_passes():
    result = lesson05.maf_sample(maf_sample_reference)
    assert result.status == "passed", result.line
    assert "3 times for D = 3, 4 times for D = 4" in result.message


@pytest.mark.parametrize(
    "learner", [maf_sample_from_z_start, maf_sample_by_degree, maf_sample_no_grad]
)
def test_maf_sample_other_right_answers_pass(learner):
    result = lesson05.maf_sample(learner)
    assert result.status == "passed", result.line


def test_maf_sample_stub_is_not_done():
    assert lesson05.maf_sample(maf_sample_stub).status == "not done"


@pytest.mark.parametrize(
    ("learner", "hint"),
    [
        (mistake(passes=1), "one pass is not enough"),
        (mistake(feed="z"), "call made(x), not made(z)"),
        (mistake(step=lambda z, m, s: z * (-s).exp() + m), "sampling multiplies by exp(s)"),
        (mistake(step=lambda z, m, s: (z - m) * (-s).exp()), "maps data to noise"),
        (lambda made, z: loop(made, z, z.shape[-1] - 1, right), "one pass short"),
        (maf_sample_index_order, "made.order"),
        (mistake(ladj="-last"), "the sign is flipped"),
        (mistake(ladj="all"), "added up the log-scales of every pass"),
        (mistake(ladj="first"), "log-scales of the first pass"),
        (maf_sample_ladj_over_batch, "not over the batch"),
        (maf_sample_returns_x_only, "return x, ladj"),
        (maf_sample_in_place, "never write into z"),
        (maf_sample_over_the_batch, "not over the points"),
        (maf_sample_point_by_point, "not over the points"),
        (maf_sample_reversed, "not reversed(range(D))"),
        (maf_sample_reset_each_pass, "once, before the loop"),
    ],
    ids=[
        "one pass", "network sees z", "exp(-s)", "inverse formula", "D-1 passes",
        "index order", "ladj sign", "ladj of every pass", "ladj of first pass",
        "ladj over batch", "x only", "z in place", "over the batch", "point by point",
        "reversed", "x reset each pass",
    ],
)
def test_maf_sample_mistakes_get_their_hint(learner, hint):
    result = lesson05.maf_sample(learner)
    assert result.status == "failed"
    assert hint in result.hint, result.line


def test_a_crash_in_learner_code_is_a_failed_verdict():
    result = lesson05.maf_sample(lambda made, z: made(z[:, :1]))
    assert result.status == "failed" and "raised ValueError" in result.message


# --- both ---------------------------------------------------------------------------------------


def test_strict_mode_raises_unless_passed(monkeypatch):
    monkeypatch.setenv("NFCOURSE_STRICT", "1")
    assert lesson05.made_masks(made_masks_reference)
    assert lesson05.maf_sample(maf_sample_reference)
    with pytest.raises(CheckFailed, match="output layer must compare strictly"):
        lesson05.made_masks(masks_with(torch.ge, torch.ge))
    with pytest.raises(CheckFailed, match="not done"):
        lesson05.maf_sample(maf_sample_stub)


def test_checks_are_exported_and_quick():
    from nfcourse import check

    assert check.made_masks is lesson05.made_masks and check.maf_sample is lesson05.maf_sample
    for run in (
        lambda: check.made_masks(made_masks_reference),
        lambda: check.maf_sample(maf_sample_reference),
    ):
        start = time.perf_counter()
        assert run()
        assert time.perf_counter() - start < 2.0  # well under a second on an idle laptop
