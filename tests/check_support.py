"""What the tests of every lesson's checks share.

Checks run as in a learner's notebook, not in strict mode (a test that wants strict mode
sets ``NFCOURSE_STRICT`` itself); a planted mistake must fail with the hint that names it.
A test module takes both with ``from check_support import assert_hint, not_strict``.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def not_strict(monkeypatch):
    """Autouse in every module that imports it: ``NFCOURSE_STRICT`` unset for each test."""
    monkeypatch.delenv("NFCOURSE_STRICT", raising=False)


def assert_hint(result, hint: str) -> None:
    """The check failed, and its hint contains ``hint`` (the words naming the mistake)."""
    assert result.status == "failed", result.line
    assert hint in result.hint, result.line
