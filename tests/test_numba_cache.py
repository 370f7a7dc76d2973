"""Numba's on-disk cache may be unwritable or damaged: minflaubert must import and compute all the same.

Each test runs a copy of the package in a fresh process (a cache is per source folder). Before kernels.compiled,
an unwritable cache made ``import`` fail ("cannot cache function ...: no locator available"), and a corrupt cache
file made every later process fail (``UnpicklingError``).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import FIXTURES

# Both paths of the encoder: attention maps (the parallel kernels) and the fast path (the one-core kernels).
SCRIPT = f"""
import numpy as np
import minflaubert
from minflaubert import FlaubertModel
model = FlaubertModel.from_pretrained({str(FIXTURES / "tiny-model")!r})
ids = np.array([[5, 6, 7, 8, 9]])
print(minflaubert.__file__)
print(repr(float(model(input_ids=ids, output_attentions=True).attentions[0].sum())))
print(repr(float(model(input_ids=ids).last_hidden_state.sum())))
"""


def expected_lines() -> list[str]:
    from minflaubert import FlaubertModel

    model = FlaubertModel.from_pretrained(FIXTURES / "tiny-model")
    ids = np.array([[5, 6, 7, 8, 9]])
    return [repr(float(model(input_ids=ids, output_attentions=True).attentions[0].sum())),
            repr(float(model(input_ids=ids).last_hidden_state.sum()))]


def copy_package(tmp_path: Path) -> Path:
    source = Path(__file__).resolve().parents[1] / "minflaubert"
    shutil.copytree(source, tmp_path / "minflaubert", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "minflaubert"


def run_copy(tmp_path: Path, **env) -> list[str]:
    """The script on the package copied under tmp_path; its output lines after checking it ran cleanly."""
    environment = {name: value for name, value in os.environ.items() if name != "NUMBA_CACHE_DIR"}
    environment.update(PYTHONPATH=str(tmp_path), PYTHONDONTWRITEBYTECODE="1", **env)
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=environment,
                            cwd=tmp_path, timeout=600)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == str(tmp_path / "minflaubert" / "__init__.py")  # the copy ran, not the installed package
    return lines[1:]


def test_no_writable_cache_folder_compiles_in_memory(tmp_path):
    package = copy_package(tmp_path)
    (package / "nn" / "__pycache__").write_text("")  # a file where Numba wants its folder: even root cannot write there
    blocker = tmp_path / "blocker"
    blocker.write_text("")  # and every other place Numba would try lies under a file
    assert run_copy(tmp_path, HOME=str(blocker / "home"), XDG_CACHE_HOME=str(blocker / "cache")) == \
        expected_lines()


def test_a_corrupt_cache_is_ignored_then_repaired(tmp_path):
    package = copy_package(tmp_path)
    expected = expected_lines()
    assert run_copy(tmp_path) == expected  # fills the cache
    cached = sorted((package / "nn" / "__pycache__").glob("kernels.*.nb[ic]"))
    assert any(path.suffix == ".nbi" for path in cached)
    for number, path in enumerate(cached):
        path.write_bytes(os.urandom(24) if number % 2 else b"")  # garbage, or a write cut to nothing
    assert run_copy(tmp_path) == expected
    assert run_copy(tmp_path) == expected


COMPILES = """
import sys
import numpy as np
import minflaubert
assert "numba" not in sys.modules, "import minflaubert loaded Numba"
import numba
from minflaubert import FlaubertModel
from minflaubert.nn import gemm, kernels, threads, tiled_attention
model = FlaubertModel.from_pretrained(FOLDER)
ids = np.array([[5, 6, 7, 8, 9]])
model(input_ids=ids, output_attentions=True)
model(input_ids=ids)
gemm.matmul(*(np.ones(shape, np.float32) for shape in ((512, 512), (512, 64), (512, 64))))  # shared by threads
for module in (gemm, kernels, threads, tiled_attention):
    for name, value in sorted(vars(module).items()):
        if isinstance(value, numba.core.dispatcher.Dispatcher) and value.signatures:
            print(module.__name__ + "." + name, sum(value.stats.cache_hits.values()),
                  sum(value.stats.cache_misses.values()))
"""


def test_import_compiles_nothing_and_the_next_process_loads_every_kernel_from_the_cache(tmp_path):
    """``import minflaubert`` must not even load Numba (its import alone is most of a cold start), and a second
    process must load every kernel's machine code from the cache: a miss would mean compiling on every start."""
    copy_package(tmp_path)
    script = COMPILES.replace("FOLDER", repr(str(FIXTURES / "tiny-model")))
    environment = {name: value for name, value in os.environ.items() if name != "NUMBA_CACHE_DIR"}
    environment.update(PYTHONPATH=str(tmp_path), PYTHONDONTWRITEBYTECODE="1")

    def run() -> dict[str, tuple[int, int]]:
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment,
                                cwd=tmp_path, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return {name: (int(hits), int(misses)) for name, hits, misses in map(str.split, result.stdout.splitlines())}

    first = run()  # compiles, and fills the cache
    assert first and all(misses > 0 for _, misses in first.values()), first
    second = run()
    # subtle: a kernel called only from inside another comes with that one's cached code, so it may not be listed
    assert second and second.keys() <= first.keys()
    assert all(hits > 0 and misses == 0 for hits, misses in second.values()), second


def test_a_cold_cache_says_once_that_kernels_are_compiled_and_a_warm_one_says_nothing(tmp_path):
    """The first command on a machine compiles for seconds: it says so on stderr, once (kernels.NOTICE_AFTER)."""
    from minflaubert.nn import kernels

    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "minflaubert", "fill-mask", "Le chat dort sur le <special1>.", "--top-k", "1",
               "--model", str(FIXTURES / "tiny-lm")]

    def notices() -> int:
        result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stderr.count("compiling its kernels for this CPU")

    assert kernels.NOTICE_AFTER <= 1.0
    assert notices() == 1  # a cold cache: compiles well over a second (the fast path's kernels, at least five)
    assert notices() == 0
