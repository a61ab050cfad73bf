"""Shared fixtures: every test starts from, and leaves behind, the same registries."""

from __future__ import annotations

import pytest

from gradbench.engine.reference_cache import CACHE_ENV
from gradbench.extend import plugins


@pytest.fixture(scope="session")
def reference_cache_dir(tmp_path_factory):
    """One disk cache of estimated references for the whole session, never the user's."""
    return tmp_path_factory.mktemp("reference-cache")


@pytest.fixture(autouse=True)
def isolated_registries(monkeypatch, reference_cache_dir):
    """Undo whatever a test registers or loads, keep entry-point autoloading on, and cache
    estimated references in the session's directory."""
    monkeypatch.delenv(plugins.AUTOLOAD_ENV, raising=False)
    monkeypatch.setenv(CACHE_ENV, str(reference_cache_dir))
    saved = plugins.snapshot()
    yield
    plugins.restore(saved)
