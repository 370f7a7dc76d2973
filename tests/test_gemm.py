"""The tiled matrix product (``nn/gemm.py``), the attention built on it (``nn/tiled_attention.py``) and the thread
team that shares their work (``nn/threads.py``), each against its plain version: ``np.matmul`` and the BLAS
attention of ``fast.packed_attention``.

Also: the kernel variants this machine does not pick by itself (AVX2, and none at all) run in a fresh process that
tells Numba to compile for another CPU, and must give the same bits as the AVX-512 one (AVX2) or NumPy's result.
No timing here: speed is measured by benchmarks/.
"""
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import FIXTURES
from minflaubert.nn import fast, gemm, threads, tiled_attention

seeds = st.integers(0, 2**32 - 1)
needs_kernel = pytest.mark.skipif(not gemm.LANES, reason=f"this CPU has no tile kernel: {gemm.KERNEL}")


def floats(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def assert_product_close(got, weight, x):
    """got == weight @ x within float32 rounding of a sum of |products| (checked against a float64 product)."""
    exact = weight.astype(np.float64) @ x.astype(np.float64)
    bound = 4 * weight.shape[1] ** 0.5 * np.finfo(np.float32).eps * (np.abs(weight) @ np.abs(x)) + 1e-30
    assert (np.abs(got - exact) <= bound).all(), np.abs(got - exact).max()


@needs_kernel
@given(seeds, st.integers(1, 40), st.integers(1, 600), st.integers(1, 90))
def test_matmul_equals_the_exact_product(seed, rows, depth, tokens):
    # every edge: rows and tokens that are not whole tiles, depths over several blocks of DEPTH_BLOCK
    rng = np.random.default_rng(seed)
    weight, x = floats(rng, rows, depth), floats(rng, depth, tokens)
    out = np.full((rows, tokens), np.nan, np.float32)
    assert gemm.matmul(weight, x, out) is out
    assert_product_close(out, weight, x)
    np.testing.assert_allclose(out, weight @ x, rtol=1e-4, atol=1e-4 * math.sqrt(depth))


@needs_kernel
def test_big_products_are_shared_between_threads_and_give_the_same_bits():
    rng = np.random.default_rng(0)
    weight, x = floats(rng, 3072, 768), floats(rng, 768, 100)
    assert 3072 * 768 * 100 > gemm.SPLIT_ABOVE
    shared, alone = np.empty((3072, 100), np.float32), np.empty((3072, 100), np.float32)
    gemm.matmul(weight, x, shared)
    gemm.serial_matmul(weight, x, alone)
    assert np.array_equal(shared, alone)  # each output is one thread's sum, in the same order
    assert_product_close(shared, weight, x)


@needs_kernel
def test_views_with_row_strides_and_stacked_products():
    # the encoder's case: q, k and v into row blocks of one buffer, from activations that are a view
    rng = np.random.default_rng(1)
    weights = tuple(floats(rng, 64, 48) for _ in range(3))
    activations = floats(rng, 48, 70)
    x = activations[:, 5:45]  # rows 70 floats apart
    qkv = np.full((192, 40), np.nan, np.float32)
    gemm.matmuls(weights, x, (qkv[:64], qkv[64:128], qkv[128:]))
    for part, weight in enumerate(weights):
        assert_product_close(qkv[64 * part:64 * (part + 1)], weight, x)


SHAPES_AT_THE_EDGES = [(1, 1, 1), (5, 7, 3), (13, 300, 17), (16, 600, 40), (40, 257, 33), (9, 64, 100)]


@needs_kernel
@pytest.mark.parametrize("rows, depth, tokens", SHAPES_AT_THE_EDGES)
def test_the_kernel_gives_the_bits_of_the_numpy_tile(rows, depth, tokens):
    # partial row and column tiles, depths over several blocks of DEPTH_BLOCK; fixed seeds, as tile_reference may
    # (rarely) differ in the last bit from a fused multiply-add
    rng = np.random.default_rng(rows * depth * tokens)
    weight, x = floats(rng, rows, depth), floats(rng, depth, tokens)
    out = np.full((rows, tokens), np.nan, np.float32)
    gemm.matmul(weight, x, out)
    assert np.array_equal(out, gemm.tile_reference(weight, x))
    serial = np.full_like(out, np.nan)
    gemm.serial_matmul(weight, x[:, :], serial)
    assert np.array_equal(serial, out)


def test_the_numpy_tile_adds_to_what_it_is_given():
    rng = np.random.default_rng(7)
    weight, panel, sums = floats(rng, 6, 30), floats(rng, 30, 16), floats(rng, 6, 16)
    np.testing.assert_allclose(gemm.tile_reference(weight, panel, sums), sums + weight @ panel, rtol=1e-5,
                               atol=1e-5)
    assert np.array_equal(gemm.tile_reference(weight[:, 10:], panel[10:], gemm.tile_reference(weight[:, :10],
                                                                                               panel[:10])),
                          gemm.tile_reference(weight, panel))  # depth in slices: the same sums


def test_use_tiles_is_the_rule_and_all_on_blas_turns_it_off(monkeypatch):
    assert gemm.use_tiles(gemm.TILES_FROM) == bool(gemm.LANES)
    assert not gemm.use_tiles(gemm.TILES_FROM - 1)
    monkeypatch.setattr(gemm, "ALL_ON_BLAS", True)
    assert not gemm.use_tiles(10 * gemm.TILES_FROM)


@needs_kernel
def test_the_fast_path_on_blas_equals_the_fast_path_on_tiles(monkeypatch):
    from minflaubert import FlaubertModel

    model = FlaubertModel.from_pretrained(FIXTURES / "tiny-model")  # small: on BLAS by the rule
    ids = np.random.default_rng(8).integers(5, 99, size=(3, 12))
    mask = np.ones(ids.shape, np.int64)
    mask[1, 9:] = mask[2, 4:] = 0
    on_blas = model(input_ids=ids, attention_mask=mask).last_hidden_state
    monkeypatch.setattr(gemm, "TILES_FROM", 0)
    on_tiles = model(input_ids=ids, attention_mask=mask).last_hidden_state
    np.testing.assert_allclose(on_tiles, on_blas, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(gemm, "ALL_ON_BLAS", True)
    assert np.array_equal(model(input_ids=ids, attention_mask=mask).last_hidden_state, on_blas)


def test_what_the_kernel_cannot_take_goes_to_numpy():
    rng = np.random.default_rng(2)
    weight, x = rng.standard_normal((9, 7)), rng.standard_normal((7, 5))  # float64
    out = np.empty((9, 5))
    np.testing.assert_allclose(gemm.matmul(weight, x, out), weight @ x)
    columns = floats(rng, 7, 10)[:, ::2]  # float32, but its columns are not contiguous
    out32 = np.empty((9, 5), np.float32)
    np.testing.assert_allclose(gemm.matmul(weight.astype(np.float32), columns, out32),
                               weight.astype(np.float32) @ columns, rtol=1e-5)
    empty = np.empty((9, 0), np.float32)
    assert gemm.matmul(weight.astype(np.float32), np.empty((7, 0), np.float32), empty).shape == (9, 0)


@pytest.mark.parametrize("causal", [False, True])
@given(seed=seeds, lengths=st.lists(st.integers(0, 70), min_size=1, max_size=4), n_heads=st.sampled_from([1, 2, 4]))
def test_tiled_attention_equals_blas_attention(causal, seed, lengths, n_heads):
    if not gemm.LANES:
        pytest.skip(gemm.KERNEL)
    rng = np.random.default_rng(seed)
    dim, tokens = 16 * n_heads, sum(lengths)
    qkv = floats(rng, 3 * dim, tokens)
    lengths = np.array(lengths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    expected = np.zeros((dim, tokens), np.float32)
    fast.packed_attention(qkv, starts, lengths, n_heads, causal, expected)
    got = np.zeros((dim, tokens), np.float32)
    tiled_attention.packed_attention(qkv, starts, lengths, n_heads, causal, got)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-6)


@needs_kernel
def test_long_attention_is_shared_between_threads_and_gives_the_same_bits():
    rng = np.random.default_rng(3)
    qkv = floats(rng, 3 * 64, 300)
    starts, lengths = np.array([0, 200]), np.array([200, 100])
    shared, alone = np.zeros((64, 300), np.float32), np.zeros((64, 300), np.float32)
    tiled_attention.packed_attention(qkv, starts, lengths, 4, False, shared)
    counter = np.zeros(1, dtype=np.int64)
    tiled_attention._attention_pairs(qkv, starts, lengths, 4, np.float32(1 / math.sqrt(16)), False, alone,
                                     counter.ctypes.data)
    assert np.array_equal(shared, alone)


@threads.compiled(nogil=True)
def count_items(taken, chunk, counter):
    # take items chunk by chunk until none is left, counting how often each was taken
    while True:
        first = threads.take(counter, chunk)
        if first >= taken.size:
            return
        for item in range(first, min(first + chunk, taken.size)):
            taken[item] += 1


def on_a_helper() -> bool:
    return threading.current_thread().name == "minflaubert-helper"


def meet_the_helpers(counter):
    """In a job of threads.share: each helper counts itself in, the calling thread waits (up to 30 s) for all of
    them. (A helper that has not started when the caller is done is not waited for: threads.share takes the job
    back. These tests need the helpers to run it.)"""
    if on_a_helper():
        threads.take(counter, 1)
        return
    deadline = time.monotonic() + 30
    while threads.take(counter, 0) < threads.size() - 1 and time.monotonic() < deadline:
        time.sleep(0.001)


def test_share_takes_every_item_once_and_hands_errors_to_the_caller():
    for chunk in (1, 3, 1000):
        taken = np.zeros(1000, dtype=np.int64)
        threads.share(count_items, (taken, chunk))
        assert (taken == 1).all()

    def fail(counter):
        meet_the_helpers(counter)
        if on_a_helper():
            raise ValueError("a helper failed")

    if threads.size() > 1:
        with pytest.raises(ValueError, match="a helper failed"):
            threads.share(fail, ())
    taken = np.zeros(10, dtype=np.int64)
    threads.share(count_items, (taken, 1))  # the team still works after an error
    assert (taken == 1).all()


@needs_kernel
def test_many_callers_at_once_each_get_their_own_product():
    # the team serves one caller at a time; the others compute alone, and nobody gets another's numbers
    rng = np.random.default_rng(4)
    weight = floats(rng, 1536, 512)
    inputs = [floats(rng, 512, 64) for _ in range(6)]
    results = [None] * len(inputs)

    def work(i):
        out = np.empty((1536, 64), np.float32)
        for _ in range(3):
            gemm.matmul(weight, inputs[i], out)
        results[i] = out

    workers = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for x, out in zip(inputs, results):
        alone = np.empty_like(out)
        gemm.serial_matmul(weight, x, alone)
        assert np.array_equal(out, alone)


@needs_kernel
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_gets_threads_of_its_own():
    rng = np.random.default_rng(5)
    weight, x = floats(rng, 3072, 768), floats(rng, 768, 64)
    out = np.empty((3072, 64), np.float32)
    gemm.matmul(weight, x, out)  # the parent's team exists now
    child = os.fork()
    if child == 0:  # pragma: no cover (the child process)
        again = np.empty_like(out)
        gemm.matmul(weight, x, again)
        os._exit(0 if np.array_equal(again, out) else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_huge_page_arrays_are_plain_float32_arrays():
    small, big = fast.huge_page_array(10), fast.huge_page_array(3 << 20)
    for array, size in ((small, 10), (big, 3 << 20)):
        assert array.dtype == np.float32 and array.shape == (size,) and array.flags.writeable
        array[:] = 1.5
        assert array.sum() == 1.5 * size
    assert big.ctypes.data % fast.HUGE_PAGE == 0 or not hasattr(__import__("mmap"), "MADV_HUGEPAGE")


VARIANT = """
import numpy as np
from minflaubert.nn import fast, gemm
rng = np.random.default_rng(0)
weight, x = rng.standard_normal((77, 300)).astype(np.float32), rng.standard_normal((300, 45)).astype(np.float32)
out = np.empty((77, 45), np.float32)
gemm.matmul(weight, x, out)
qkv = rng.standard_normal((96, 50)).astype(np.float32)
context = np.zeros((32, 50), np.float32)
starts, lengths = np.array([0, 30]), np.array([30, 20])
(fast.packed_attention if not gemm.LANES else __import__("minflaubert.nn.tiled_attention").nn.tiled_attention
 .packed_attention)(qkv, starts, lengths, 2, False, context)
np.save(OUT + "/product.npy", out)
np.save(OUT + "/attention.npy", context)
print("bits of the NumPy tile:", np.array_equal(out, gemm.tile_reference(weight, x)))
print(gemm.KERNEL)
"""
HASWELL = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+fxsr,+lzcnt,+mmx,+movbe,+popcnt,+sse,+sse2,"
           "+sse3,+sse4.1,+sse4.2,+ssse3,+xsave,+xsaveopt")


def run_variant(tmp_path: Path, name: str, **env) -> tuple[str, np.ndarray, np.ndarray]:
    """The script above in a fresh process on a copy of the package (its own Numba cache), -> (its KERNEL, its
    product, its attention, whether the product has the NumPy tile's bits)."""
    package = tmp_path / name
    shutil.copytree(Path(gemm.__file__).parents[1], package / "minflaubert",
                    ignore=shutil.ignore_patterns("__pycache__"))
    environment = {key: value for key, value in os.environ.items() if not key.startswith("NUMBA_CPU")}
    environment.update(PYTHONPATH=str(package), **env)
    done = subprocess.run([sys.executable, "-c", VARIANT.replace("OUT", repr(str(package)))], env=environment,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    *_, tile_bits, kernel = done.stdout.strip().splitlines()
    return kernel, np.load(package / "product.npy"), np.load(package / "attention.npy"), tile_bits


@needs_kernel
def test_the_avx2_kernel_gives_the_same_bits_and_no_kernel_gives_numpys_result(tmp_path):
    # both variants are held to gemm.tile_reference, and so to each other
    best = run_variant(tmp_path, "best")
    avx2 = run_variant(tmp_path, "avx2", NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=HASWELL)
    plain = run_variant(tmp_path, "plain", NUMBA_CPU_NAME="generic")
    assert best[0] == gemm.KERNEL and "AVX2" in avx2[0] and "np.matmul" in plain[0]
    assert best[3] == avx2[3] == "bits of the NumPy tile: True"
    # the same sums in the same order, whatever the tile's shape: the same bits on an AVX2 and an AVX-512 CPU
    assert np.array_equal(avx2[1], best[1]) and np.array_equal(avx2[2], best[2])
    np.testing.assert_allclose(plain[1], best[1], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(plain[2], best[2], rtol=1e-5, atol=2e-6)


@pytest.mark.skipif(threads.size() < 2, reason="needs two threads")
def test_a_job_the_helper_has_not_started_is_taken_back():
    # the caller has done all of it; waiting for a helper kept off its CPU by another program would only add
    # that program's time slice to every product
    helper = threads.team().helpers[0]
    ran_on = []
    with threads.team().busy:
        helper.start(lambda: ran_on.append("helper"), ())
        helper.wait()  # at once: most often before the helper could see the job
        for _ in range(100):  # whichever won, the helper is ready for the next job
            helper.start(lambda: None, ())
            helper.wait()
    assert ran_on in ([], ["helper"])
    test_share_takes_every_item_once_and_hands_errors_to_the_caller()


def test_alone_keeps_the_work_on_the_calling_thread():
    ran_on = set()

    def record(counter):
        meet_the_helpers(counter)
        ran_on.add(threading.get_ident())

    with threads.alone():
        threads.share(record, ())
    assert ran_on == {threading.get_ident()}
    threads.share(record, ())
    assert len(ran_on) == min(2, threads.size())


@pytest.mark.skipif(threads.size() < 2 or not hasattr(signal, "SIGINT"), reason="needs two threads and SIGINT")
def test_ctrl_c_while_waiting_still_waits_for_the_helper():
    # the helper writes into the caller's arrays: the caller must not return (and hand the arrays to the next job,
    # nor take the helper's late "done" for the next job's) before it has finished
    log = []

    def job(counter):
        meet_the_helpers(counter)
        if on_a_helper():
            time.sleep(0.3)
            log.append("helper finished")

    threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        threads.share(job, ())
    assert log == ["helper finished"]
    test_share_takes_every_item_once_and_hands_errors_to_the_caller()  # and the team works as before
