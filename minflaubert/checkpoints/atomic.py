"""Crash-safe writes: a file or a folder is replaced whole, or not at all.

A process can die at any instant (Ctrl-C, the OOM killer, ``kill -9``, a power cut). If it dies while writing
``model.safetensors`` over a good one, or after the new ``config.json`` but before the new weights, what is left on
disk loads as neither model, or not at all: the old model is lost. SQLite and huggingface_hub avoid this the same
way, and so does this module: **write everything somewhere else, then make it appear under the final name in one
step** that the operating system performs entirely or not at all.

* a file: write ``.NAME.tmp-PID`` beside it, flush it to the disk (``fsync``), then ``os.replace`` it over NAME.
  A rename within one folder is atomic: readers see the old file or the new one, never a mix.
* a folder (``save_pretrained``: config, weights, tokenizer files that must match each other): write a whole new
  folder ``.NAME.tmp-PID`` beside it, carry over (hard links: no copy) the files of the old folder this save did not
  rewrite, then swap the two folders:

  - on Linux (``renameat2(RENAME_EXCHANGE)``) and macOS (``renamex_np(RENAME_SWAP)``) the kernel exchanges the two
    names in one step, so a complete folder is under NAME at every instant;
  - elsewhere, two renames: NAME -> ``.NAME.old``, then the new folder -> NAME. Between the two, NAME is missing
    but ``.NAME.old`` is complete: ``readable_folder`` (used when loading) reads it then, and the next save puts
    it back first.

  The old folder is deleted last. A model loaded from it keeps working: its memory-mapped weights stay readable
  until it is closed (an unlinked file lives on while it is mapped).

What is not guaranteed: two processes saving into the same folder at the same time (the last swap wins, and the
other's staging folder may be left behind). Leftover ``.NAME.tmp-PID`` folders of dead processes are removed by the
next save.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import sys
from pathlib import Path


def staging_path(target: Path) -> Path:
    """Where a new version of ``target`` is written before it takes its place: a hidden sibling, this process's."""
    return target.with_name(f".{target.name}.tmp-{os.getpid()}")


def old_path(target: Path) -> Path:
    """Where the two-rename swap parks the previous folder for a moment."""
    return target.with_name(f".{target.name}.old")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike):
    """``with atomic_file("vectors.npy") as tmp: write(tmp)``: on success tmp replaces the file in one step; on any
    error (Ctrl-C included) tmp is deleted and the previous file, if any, is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_path(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike):
    """``with atomic_folder(folder) as staging: write files into staging``: on success the staging folder becomes
    ``folder`` in one step, with the old folder's other files carried over; on error ``folder`` is untouched."""
    target = Path(os.path.abspath(target))  # subtle: "." has no name to put a sibling beside
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} is a file: cannot save a folder there")
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    staging = staging_path(target)
    shutil.rmtree(staging, ignore_errors=True)  # left by an earlier process that had our pid
    staging.mkdir()
    try:
        yield staging
        if target.is_dir():
            _carry_over(target, staging)
        for file in staging.iterdir():
            _fsync(file)
        _fsync_folder(staging)
        _swap_in(staging, target)
        _follow_into(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def readable_folder(folder: str | os.PathLike) -> Path:
    """The folder to read for ``folder``: itself, or during a two-rename swap (or after a crash within one), the
    complete previous version parked at ``.NAME.old``."""
    folder = Path(folder)
    if not folder.exists() and old_path(folder).is_dir():
        return old_path(folder)
    return folder


def _recover(target: Path) -> None:
    """Undo what a save killed mid-way left: restore a parked old folder, remove dead processes' staging folders."""
    if not target.exists() and old_path(target).is_dir():
        os.rename(old_path(target), target)
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):
        pid = leftover.name.rpartition("-")[2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(old_path(target))  # a swap that finished but was killed while deleting the old folder


def _follow_into(target: Path) -> None:
    """If this process works inside ``target`` (``save_pretrained(".")``), move it into the new folder: the old
    one, where its working directory still is (a directory is followed by identity, not by name), is deleted."""
    try:
        os.getcwd()
        return  # subtle: raises only when the working directory was deleted
    except FileNotFoundError:
        os.chdir(target)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, ValueError):  # someone else's process; Windows' os.kill differs
        return True
    return True


def _carry_over(old: Path, new: Path) -> None:
    """Give ``new`` the files of ``old`` it does not have (a tokenizer saved beside a model, a README...).

    subtle: hard links, made *after* the new files are written. Linked before, a writer opening config.json "w"
    would truncate the very inode the old folder still uses: the old model would change under our feet.
    """
    for item in old.iterdir():
        destination = new / item.name
        if destination.exists() or item.name.startswith("."):
            continue
        if item.is_dir():
            shutil.copytree(item, destination, copy_function=_link_or_copy)
        else:
            _link_or_copy(item, destination)


def _link_or_copy(source, destination) -> None:
    try:
        os.link(source, destination)
    except OSError:  # a file system without hard links
        shutil.copy2(source, destination)


def _swap_in(staging: Path, target: Path) -> None:
    if not target.exists():
        os.rename(staging, target)
    elif _exchange(staging, target):
        shutil.rmtree(staging)  # now holds the old version
    else:
        parked = old_path(target)
        os.rename(target, parked)
        # (killed here: target is missing, `parked` is complete; readable_folder and the next save know it)
        os.rename(staging, target)
        shutil.rmtree(parked)
    _fsync_folder(target.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step, when the system can: True if done, False if it cannot (then nothing)."""
    libc = _libc()
    function = getattr(libc, "renameat2", None) or getattr(libc, "renamex_np", None)
    if function is None:
        return False
    if function.__name__ == "renameat2":
        at_current_folder, exchange = -100, 2  # AT_FDCWD, RENAME_EXCHANGE (linux/fs.h)
        result = function(at_current_folder, os.fsencode(a), at_current_folder, os.fsencode(b), exchange)
    else:
        result = function(os.fsencode(a), os.fsencode(b), 0x2)  # RENAME_SWAP (macOS sys/stdio.h)
    return result == 0  # subtle: a file system that cannot exchange (EINVAL) leaves both paths as they were


def _libc():
    if sys.platform not in ("linux", "darwin"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return None


def _fsync(path: Path) -> None:
    """Push a file's bytes to the disk: a rename that survives a power cut must not point at unwritten data."""
    if path.is_file():
        with open(path, "rb") as file:
            os.fsync(file.fileno())


def _fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX: fsync the directory; Windows has no such thing)."""
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
