"""The benchmark scripts encoder.py, cold_start.py and end_to_end.py at a tiny size, so that they cannot rot.

Each runs in a subprocess with ``--tiny --runs 1``, as a user runs it. The tests check that it prints its Markdown
table with a row for every engine, and that the engines agreed (the scripts themselves exit with an error when
they do not). No time is asserted: a tiny model's times on a shared machine mean nothing.

They need torch + transformers (skipped without them, except in CI). ONNX Runtime's engine runs when onnxruntime is
installed; without it the scripts run with ``--no-onnx``, and ``test_onnx_runtime_is_installed`` skips (or fails in
CI, which installs the ``benchmark`` extra) to say so.
"""
import importlib.util
import os
import subprocess
import sys

import pytest

from conftest import REPO, require

BENCHMARKS = REPO / "benchmarks"
HAS_ONNX = importlib.util.find_spec("onnxruntime") is not None


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One tiny checkpoint (and ONNX export) for the module: whichever script runs first builds it."""
    return tmp_path_factory.mktemp("bench-tiny")


def run_script(name: str, folder, *options: str) -> str:
    """``python benchmarks/NAME --tiny --runs 1 --folder FOLDER OPTIONS`` -> its standard output; fails on an error."""
    onnx = [] if HAS_ONNX or name == "cold_start.py" else ["--no-onnx"]
    command = [sys.executable, str(BENCHMARKS / name), "--tiny", "--runs", "1", "--folder", str(folder), *onnx,
               *options]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


def table_rows(output: str) -> dict[str, list[str]]:
    """The rows of the Markdown table(s) in ``output``: first cell -> all cells (the header row included)."""
    rows = {}
    for line in output.splitlines():
        if line.startswith("| ") and line.endswith(" |"):
            cells = [cell.strip() for cell in line[2:-2].split(" | ")]
            rows[cells[0]] = cells
    return rows


def test_encoder_benchmark_runs(transformers, folder):
    output = run_script("encoder.py", folder)
    assert "BLAS: " in output, output
    rows = table_rows(output)
    assert rows["shape"][-4:] == ["ours/torch", "target", "onnx/torch", "ours/onnx"], output
    for shape in ("1x16", "4x32", "padded"):  # the tiny shapes; each was checked against transformers first
        assert shape in rows, output
        onnx_ratios = rows[shape][-2:]
        assert (onnx_ratios != ["-", "-"]) == HAS_ONNX, output


def test_cold_start_benchmark_runs(transformers, folder):
    output = run_script("cold_start.py", folder)
    rows = table_rows(output)
    assert rows["engine"] == ["engine", "seconds", "peak RSS MB", "ru_maxrss MB"], output
    for engine in ("minflaubert", "transformers"):
        assert float(rows[engine][2]) > 0, output
    expected = "VmHWM" if os.path.isfile("/proc/self/status") else "ru_maxrss (no /proc here)"
    assert f"peak RSS = {expected}" in output, output


def test_end_to_end_benchmark_runs(transformers, folder):
    output = run_script("end_to_end.py", folder, "--lines", "40", "--batch-size", "8")
    agreement = next((line for line in output.splitlines() if line.startswith("vectors agree")), "")
    assert agreement.startswith("vectors agree: max abs difference to transformers' minflaubert"), output
    assert ("onnxruntime" in agreement) == HAS_ONNX, output
    rows = table_rows(output)
    engines = [name for name in rows if name != "engine"]
    assert len(engines) == (4 if HAS_ONNX else 2), output  # ONNX Runtime: lines in order, and batched by length
    assert rows[engines[0]][-1] == "1.00", output  # transformers first: the reference of the ratios


def test_onnx_runtime_is_installed():
    """The benchmarks' third engine: CI installs it (the ``benchmark`` extra); elsewhere its absence is a skip."""
    require(HAS_ONNX, "onnxruntime is not installed (pip install -e '.[benchmark]'): the benchmark tests ran "
                      "without their ONNX Runtime engine")


def test_end_to_end_falls_back_to_built_in_sentences(tmp_path, monkeypatch):
    """On a user's machine there is no corpus beside the checkout: the lines are the built-in ones, and it says so."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import end_to_end

    monkeypatch.setattr(end_to_end, "SHARED", tmp_path)
    lines, source = end_to_end.read_lines(20)
    assert len(lines) == 20 and lines[:len(end_to_end.BUILT_IN)] == end_to_end.BUILT_IN
    assert "built-in French sentences, repeated" in source
