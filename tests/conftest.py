"""Shared test helpers.

Some tests need things a user's laptop may not have: PyTorch + transformers (the numerical reference) or the
assets in ``../shared/data`` (the published tokenizer files, a French corpus). Those tests call ``require(...)``:
on a user's machine it skips them with the reason; in CI (``CI=true``) a missing requirement is a failure, so a
green CI always means the reference comparisons really ran.
"""
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data"
IN_CI = os.environ.get("CI", "").lower() == "true"

# Hypothesis profiles: a quick one by default, a thorough one that CI selects with HYPOTHESIS_PROFILE=ci.
settings.register_profile("default", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def require(condition: bool, reason: str) -> None:
    """Skip the calling test when ``condition`` is false, but fail it in CI where everything must run."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must run this test, but: {reason}")
    pytest.skip(reason)


def import_or_require(module_name: str):
    """Import an optional reference module (torch, transformers) or skip/fail as ``require`` does."""
    try:
        return __import__(module_name)
    except ImportError:
        require(False, f"{module_name} is not installed (pip install -e '.[parity]')")


@pytest.fixture(scope="session")
def torch():
    module = import_or_require("torch")
    module.set_num_threads(2)
    return module


@pytest.fixture(scope="session")
def transformers(torch):
    return import_or_require("transformers")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of test assets that CI has beside the checkout (never copied into the project)."""
    require(SHARED_DATA.is_dir(), f"test assets not found at {SHARED_DATA}")
    return SHARED_DATA
