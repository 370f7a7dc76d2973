"""A small team of threads that share the items of one job: the row tiles of a product, the heads of attention.

Why not ``numba.prange``: with Numba's "workqueue" threading layer (the one available everywhere, see
``kernels.choose_threading_layer``) each parallel region costs ~140 us to start, and the encoder runs eight of
them per layer; its OpenMP layer starts faster but its waiting threads spin on the cores for long. Here a helper
spins for ~0.5 ms after each job, waiting for the next (a hand-off then costs ~7 us), and sleeps after that; the
calling thread works on the job too, and every thread takes its items in chunks from a shared counter; the work
runs in Numba functions compiled with ``nogil=True``, so the threads run at once. Measurements:
benchmarks/README.md, "The tiled kernel".

Size: ``NUMBA_NUM_THREADS`` threads in all (the calling one included), as for Numba's own parallel loops.
"""
from __future__ import annotations

import contextlib
import os
import threading

import numba
import numba.extending
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types

from .kernels import compiled


# A helper's state, one int64 that both threads read and write atomically.
DONE, READY, SLEEPING, RUNNING = 0, 1, 2, 3
# How long a thread spins (busy-waits) for the other before it sleeps: 20,000 pause instructions, ~0.5 ms here.
SPIN = 20_000


@numba.extending.intrinsic
def _atomic(typingctx, operation, address, value, expected):
    """Atomic operations on the int64 at ``address`` (sequentially consistent): operation 0 loads it, 1 stores
    ``value`` (-> 0), 2 swaps in ``value`` (-> the old), 3 compares it with ``expected`` and if equal stores
    ``value`` (-> the old), 4 adds ``value`` to it (-> the old). Numba has no atomics; these are single LLVM
    instructions."""
    if not isinstance(operation, types.IntegerLiteral):
        raise numba.core.errors.RequireLiteralValue("operation")
    kind = operation.literal_value

    def codegen(context, builder, signature, arguments):
        pointer = builder.inttoptr(arguments[1], ir.IntType(64).as_pointer())
        value, expected = arguments[2], arguments[3]
        if kind == 0:
            return builder.load_atomic(pointer, "seq_cst", 8)
        if kind == 1:
            builder.store_atomic(value, pointer, "seq_cst", 8)
            return ir.Constant(ir.IntType(64), 0)
        if kind == 2:
            return builder.atomic_rmw("xchg", pointer, value, "seq_cst")
        if kind == 4:
            return builder.atomic_rmw("add", pointer, value, "seq_cst")
        return builder.extract_value(builder.cmpxchg(pointer, expected, value, "seq_cst", "seq_cst"), 0)

    return types.int64(operation, types.intp, types.int64, types.int64), codegen


@numba.extending.intrinsic
def _pause(typingctx):
    """The CPU's spin-wait hint (x86 ``pause``): a polite busy-wait, which lets the other hyper-thread run."""
    def codegen(context, builder, signature, arguments):
        pause = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                               "llvm.x86.sse2.pause")
        builder.call(pause, [])
        return context.get_dummy_value()

    return types.void(), codegen


@numba.extending.intrinsic
def _sched_yield(typingctx):
    """libc's sched_yield(): let another thread that waits for this CPU run (resolved by name when loaded)."""
    def codegen(context, builder, signature, arguments):
        function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []),
                                                  "sched_yield")
        builder.call(function, [])
        return context.get_dummy_value()

    return types.void(), codegen


@compiled(nogil=True)
def _spin_until(address, wanted, spins):
    # True once the int64 at address equals wanted; False after spins tries. No GIL held meanwhile.
    for attempt in range(spins):
        if _atomic(0, address, 0, 0) == wanted:
            return True
        _pause()
        if attempt % 64 == 63:
            # subtle: the other thread may be waiting to run on this very CPU (the OS wakes a thread where its
            # waker runs): spinning without yielding would keep it off for the whole spin
            _sched_yield()
    return _atomic(0, address, 0, 0) == wanted


@compiled(nogil=True)
def _store(address, value):
    _atomic(1, address, value, 0)


@compiled(nogil=True)
def _swap(address, value):
    return _atomic(2, address, value, 0)


@compiled(nogil=True)
def _compare_and_swap(address, expected, value):
    return _atomic(3, address, value, expected)


class _Helper:
    """One thread that runs ``function(*arguments)`` each time it is handed a job.

    subtle: handing over costs a wake-up if the other thread sleeps, and a wake-up is slow: ~50 us on this
    project's machines, far more right after the machine sat idle (a virtual CPU that halts is descheduled). So
    each side first spins on the shared state for a little while (that is what OpenMP and OpenBLAS threads do
    too), and sleeps on a lock only after that: between two products of the encoder, nobody sleeps.
    """

    def __init__(self, cpu: int | None = None):
        self.cpu = cpu
        self.job, self.error = None, None
        self.state = np.array([DONE], dtype=np.int64)
        self.address = self.state.ctypes.data
        self.wake, self.done = threading.Lock(), threading.Lock()  # used as binary semaphores
        self.wake.acquire()
        self.done.acquire()
        threading.Thread(target=self.loop, name="minflaubert-helper", daemon=True).start()

    def start(self, function, arguments):
        self.job = function, arguments
        if _swap(self.address, READY) == SLEEPING:
            self.wake.release()

    def wait(self):
        # subtle: a helper that has not started the job by now (its CPU busy with another program) would only find
        # nothing left to take, after the OS gets round to it: the job is taken back instead of waited for
        if _compare_and_swap(self.address, READY, DONE) == READY:
            return
        interrupted = None
        while True:
            try:  # subtle: the spin too (a Ctrl-C raised as it returns would skip the acquire, and the next job
                _spin_until(self.address, DONE, SPIN)  # would find "done" already released)
                self.done.acquire()
                break
            except KeyboardInterrupt as error:  # subtle: the helper is still at work on our arrays: wait for it,
                interrupted = error                # or its "done" would be taken for the next job's
        if interrupted is not None:
            raise interrupted
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def loop(self):
        if self.cpu is not None:
            # subtle: woken after an idle spell, the OS puts a thread on its waker's CPU, and then both spin there
            # while the other CPU sits idle; a helper kept on a CPU of its own never shares with the caller long
            os.sched_setaffinity(0, {self.cpu})  # this thread only (0: the calling thread)
        while True:
            if not _spin_until(self.address, READY, SPIN) and _compare_and_swap(self.address, DONE,
                                                                                 SLEEPING) == DONE:
                self.wake.acquire()  # start() saw SLEEPING: it releases wake after setting READY
            if _compare_and_swap(self.address, READY, RUNNING) != READY:
                continue  # the caller took the job back (see wait)
            function, arguments = self.job
            try:
                function(*arguments)
            except BaseException as error:  # noqa: BLE001 (handed to the caller, who raises it)
                self.error = error
            self.job = None
            _store(self.address, DONE)
            self.done.release()


class _Team:
    def __init__(self, count: int):
        self.pid = os.getpid()  # a forked child inherits this object but none of its threads: see team()
        self.busy = threading.Lock()  # one job at a time
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        # helper k on the k-th CPU from the end, when there are enough CPUs for each to have its own
        self.helpers = [_Helper(cpus[-1 - k] if len(cpus) > count else None) for k in range(count)]


_team = None
_team_lock = threading.Lock()
_calling_thread = threading.local()


@contextlib.contextmanager
def alone():
    """Within this block, the calling thread computes its jobs by itself (the helpers are left to other threads):
    for processes that each take one core, as the workers of ``minflaubert embed --dask``."""
    before = getattr(_calling_thread, "alone", False)
    _calling_thread.alone = True
    try:
        yield
    finally:
        _calling_thread.alone = before


def size() -> int:
    """How many threads share a job (the calling one included)."""
    return max(1, numba.config.NUMBA_NUM_THREADS)


def team() -> _Team | None:
    """This process's helper threads, created on first use (and again in a forked child); None for one thread."""
    global _team
    if size() < 2:
        return None
    with _team_lock:
        if _team is None or _team.pid != os.getpid():
            _team = _Team(size() - 1)
        return _team


def share(function, arguments: tuple, split: bool = True) -> None:
    """Run ``function(*arguments, counter)`` on every thread of the team at once, the calling one included, and
    return when all have finished. ``counter`` is the address of a fresh int64, 0: the function takes its items
    with ``take(counter, n)`` until none is left, so a thread slowed down (by another process, say) simply takes
    fewer. Without ``split`` (a job too small to gain from it), when the team is busy with another caller's job,
    inside ``alone()``, or without a team, the calling thread runs it by itself."""
    counter = np.zeros(1, dtype=np.int64)
    helpers = team() if split and not getattr(_calling_thread, "alone", False) else None
    if helpers is None or not helpers.busy.acquire(blocking=False):
        function(*arguments, counter.ctypes.data)
        return
    try:
        for helper in helpers.helpers:
            helper.start(function, (*arguments, counter.ctypes.data))
        try:
            function(*arguments, counter.ctypes.data)
        finally:
            for helper in helpers.helpers:
                helper.wait()
    finally:
        helpers.busy.release()


@compiled(nogil=True)
def take(counter, count):
    """Take the next ``count`` items of a shared job: -> the first of them (atomically: no two threads get the
    same). ``counter``: the job's address from ``share``."""
    return _atomic(4, counter, count, 0)
