"""Shared fixtures: every test starts from, and leaves behind, the same registries."""

from __future__ import annotations

import pytest

from gradbench.extend import plugins


@pytest.fixture(autouse=True)
def isolated_registries(monkeypatch):
    """Undo whatever a test registers or loads, and keep entry-point autoloading on."""
    monkeypatch.delenv(plugins.AUTOLOAD_ENV, raising=False)
    saved = plugins.snapshot()
    yield
    plugins.restore(saved)
