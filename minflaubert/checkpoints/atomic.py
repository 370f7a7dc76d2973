"""Crash-safe writes: a file, or the set of files one save writes, is replaced whole or not at all; and a save
touches nothing else.

A process can die at any instant (Ctrl-C, the OOM killer, ``kill -9``, a power cut). If it dies while writing
``model.safetensors`` over a good one, or after the new ``config.json`` but before the new weights, what is left on
disk loads as neither model, or not at all: the old model is lost. SQLite and huggingface_hub avoid this the same
way, and so does this module: **write everything under other names, then make it appear under the final names in
a step** that the operating system performs entirely or not at all.

* a file (``atomic_file``): write ``.NAME.tmp-HOST-PID-THREAD`` beside it, flush it to the disk (``fsync``), then
  ``os.replace`` it over NAME. A rename within one folder is atomic: readers see the old file or the new one.
* the files of one save (``atomic_folder``: config, weights, tokenizer files that must match each other). One
  rename can only move one file, so the save needs a commit point, as a database does:

  1. the new files are written into a hidden staging folder *inside* the target,
     ``.minflaubert-save.tmp-HOST-PID-THREAD/``, and flushed to the disk;
  2. **commit**: the staging folder is renamed ``.minflaubert-save.commit-TIME/`` in one step. Before this
     rename the save has not happened; after it, it has, even if the process dies the next instant;
  3. each file is moved from the commit folder over its old version, and the empty commit folder is removed.

  A process killed during step 3 leaves a commit folder: whoever opens the folder next, to load or to save
  (``readable_folder``, which every loader calls), first finishes those moves. Every reader therefore finds the
  old files or the new ones. A model loaded earlier keeps working: its memory-mapped weights stay readable after
  the file is replaced (an unlinked file lives on while it is mapped).

**Nothing else is touched.** The folder is never replaced, copied or walked: its hidden files (``.git/``,
``.env``), its other files, subfolders and symlinks stay as they are, a symlinked folder stays a link (the save
goes into its target), and a process working inside the folder keeps its working directory. A file the save
writes replaces a symlink of the same name (the link's target is left alone). A save writes ``model.safetensors``,
which every loader (this one, transformers') reads before a ``pytorch_model.bin`` or a shard index that may sit
beside it: such files of another format never shadow the new weights, and they are not the save's to delete.

One save at a time per folder: a save holds an exclusive ``flock`` on the folder itself (no lock file is added;
where the file system cannot lock a folder, NFS or Windows, two simultaneous saves are not serialized). A save
also removes what saves killed before it left: staging folders and ``.NAME.tmp-HOST-PID-THREAD`` files whose
process, on this host, no longer runs; nothing else.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

SAVE_PREFIX = ".minflaubert-save."  # the staging and commit folders of a save, inside its target folder


def writer_id() -> str:
    """``HOST-PID-THREAD``: unique to this thread of this process (a Dask task run twice by two threads, or two
    machines sharing a file system, never write the same temporary file)."""
    return f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}"


def temporary_path(path: Path, owner: str = "") -> Path:
    """Where a new version of ``path`` is written before it takes its place: ``.NAME.tmp-[OWNER-]HOST-PID-THREAD``,
    a hidden sibling. ``owner`` lets a job recognise its own leftovers (and only those)."""
    return path.with_name(f".{path.name}.tmp-{owner + '-' if owner else ''}{writer_id()}")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, owner: str = ""):
    """``with atomic_file("vectors.npy") as tmp: write(tmp)``: on success tmp replaces the file in one step; on any
    error (Ctrl-C included) tmp is deleted and the previous file, if any, is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path, owner)
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
    """``with atomic_folder(folder) as staging: write files into staging``: on success those files replace their
    namesakes in ``folder`` all together (see the top of this module); on error ``folder`` is untouched."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} is a file: cannot save a folder there")
    target.mkdir(parents=True, exist_ok=True)
    with _save_lock(target):
        _finish_saves(target)
        _remove_dead_leftovers(target)
        staging = target / f"{SAVE_PREFIX}tmp-{writer_id()}"
        staging.mkdir()
        try:
            yield staging
            for file in _staged_files(staging, target):
                _fsync(file)
            _fsync_folder(staging)
            commit = target / f"{SAVE_PREFIX}commit-{time.time_ns():020d}"
            os.rename(staging, commit)  # the commit point
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_folder(target)
        _move_in(commit, target)


def readable_folder(folder: str | os.PathLike) -> Path:
    """``folder``, once a save that a crash interrupted after its commit point is finished (loaders call this
    before reading: the files they find are then all old or all new)."""
    folder = Path(folder)
    if folder.is_dir() and any(folder.glob(f"{SAVE_PREFIX}commit-*")):
        try:
            with _save_lock(folder):
                _finish_saves(folder)
        except PermissionError as error:
            raise PermissionError(f"{folder} holds a save that was interrupted after it was complete; finishing "
                                  f"it needs write permission on the folder ({error})") from None
    return folder


def _staged_files(staging: Path, target: Path) -> list[Path]:
    """The files a save wrote; each must be able to take its place (a folder of that name would be in the way)."""
    files = sorted(staging.iterdir())
    for file in files:
        if not file.is_file():
            raise ValueError(f"a save writes files only, not {file.name!r}")
        if (target / file.name).is_dir() and not (target / file.name).is_symlink():
            raise IsADirectoryError(f"cannot save {file.name} into {target}: a folder of that name is in the way")
    return files


def _finish_saves(target: Path) -> None:
    """Move in the files of every committed save left in ``target``, oldest first."""
    for commit in sorted(target.glob(f"{SAVE_PREFIX}commit-*")):  # (their names end with a zero-padded time)
        _move_in(commit, target)


def _move_in(commit: Path, target: Path) -> None:
    """Step 3: each committed file over its old version, then the empty commit folder goes."""
    with contextlib.suppress(FileNotFoundError):  # (finished meanwhile by a process that could not lock)
        for file in sorted(commit.iterdir()):
            with contextlib.suppress(FileNotFoundError):
                os.replace(file, target / file.name)
        _fsync_folder(target)
        commit.rmdir()
        _fsync_folder(target)


def _remove_dead_leftovers(target: Path) -> None:
    """Staging folders and temporary files of saves killed earlier: only ours (our name patterns), only those of
    a process of this host that no longer runs."""
    for leftover in target.glob(".*.tmp-*"):  # (the staging folders' names end so too)
        if _written_by_dead_process(leftover.name.rpartition(".tmp-")[2]):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def _written_by_dead_process(writer: str) -> bool:
    """Whether ``writer`` (``HOST-PID-THREAD``, see ``writer_id``) names a process of this host that has ended."""
    parts = writer.rsplit("-", 2)  # (a host name may hold dashes; a pid and a thread id do not)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not (parts[1].isdigit() and parts[2].isdigit()):
        return False
    return not _alive(int(parts[1]))


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


@contextlib.contextmanager
def _save_lock(folder: Path):
    """Hold an exclusive ``flock`` on the folder itself while saving into it (or finishing a save): saves of two
    processes take turns. Where folders cannot be locked (no fcntl, NFS), go on unlocked."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        descriptor = None
    try:
        if descriptor is not None and fcntl is not None:
            with contextlib.suppress(OSError):  # a file system without flock on folders
                fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        if descriptor is not None:
            os.close(descriptor)  # (closing releases the lock)


def _fsync(path: Path) -> None:
    """Push a file's bytes to the disk: a rename that survives a power cut must not point at unwritten data."""
    if path.is_file():
        with open(path, "rb") as file:
            os.fsync(file.fileno())


def _fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX: fsync the directory; Windows and some network file systems
    cannot, and then the rename is as durable as the system makes it)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
