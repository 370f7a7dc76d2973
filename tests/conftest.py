"""Shared test helpers.

Some tests need things a user's laptop may not have: PyTorch + transformers (the numerical reference) or the
assets in ``../shared/data`` (the published tokenizer files, a French corpus). Those tests call ``require(...)``:
on a user's machine it skips them with the reason; in CI (``CI=true``) a missing requirement is a failure, so a
green CI always means the reference comparisons really ran.
"""
import os
from pathlib import Path

import numpy as np
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


# -- parity bookkeeping: every comparison records its worst error; the session ends with a table of them --
PARITY = {}


def assert_close(ours, reference, case: str, tolerance: float = 2e-5) -> float:
    """|ours - reference| <= tolerance * max(1, max|reference|), elementwise; records the worst relative error."""
    ours, reference = np.asarray(ours), np.asarray(reference)
    assert ours.shape == reference.shape, f"{case}: shape {ours.shape} != reference {reference.shape}"
    scale = max(1.0, float(np.abs(reference).max(initial=0.0)))
    error = float(np.abs(ours.astype(np.float64) - reference).max(initial=0.0)) / scale
    PARITY[case] = max(PARITY.get(case, 0.0), error)
    assert error <= tolerance, f"{case}: max error {error:.3g} x scale exceeds {tolerance:g}"
    return error


def compare_outputs(ours: dict, reference: dict, case: str, tolerance: float = 2e-5, skip=()) -> None:
    """Compare every reference field (flattened names like hidden_states.3) with ours."""
    for name, expected in reference.items():
        if name.split(".")[0] in skip:
            continue
        assert name in ours, f"{case}: we return no {name}"
        if expected.dtype.kind in "iu":
            np.testing.assert_array_equal(ours[name], expected, err_msg=f"{case}: {name}")
        else:
            assert_close(ours[name], expected, f"{case} {name.split('.')[0]}", tolerance)


def columns(array):
    """[tokens, features] -> the fast path's feature-major [features, tokens], a new C-contiguous array."""
    return array.T.copy()  # subtle: ascontiguousarray would return a view when a side is 1


def flatten_output(output) -> dict:
    """Our ModelOutput -> {name: array} with tuples numbered like tests/reference.py does."""
    flat = {}
    for name, value in output.items():
        if isinstance(value, tuple):
            flat.update({f"{name}.{i}": np.asarray(item) for i, item in enumerate(value)})
        else:
            flat[name] = np.asarray(value)
    return flat


def pytest_terminal_summary(terminalreporter):
    if PARITY:
        terminalreporter.section("parity: worst error / max(1, max|reference|) per case")
        for case, error in sorted(PARITY.items()):
            terminalreporter.write_line(f"{error:10.3e}  {case}")
