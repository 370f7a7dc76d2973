"""The published FlauBERT checkpoints: the registry, where a user's copy lives, and how to download it.

``registry.json`` (shipped inside the package, so an installed minflaubert knows it too) lists the four checkpoints
with their files. ``download(NAME)`` fetches them into ``weights/NAME/`` with three guarantees:

* **atomic** — a file only appears under its final name once it is complete and verified; until then it lives
  under a temporary name (``FILE.part``, or a hidden staging folder for huggingface_hub), so a crash never leaves
  a half file that looks finished;
* **verified** — when the registry knows a file's sha256 the bytes are hashed before they are published; a
  mismatch deletes them. When it does not know it (``null``), the download says so instead of pretending;
* **resumable** — an interrupted transfer continues where it stopped (HTTP ``Range``) instead of restarting a
  1.5 GB file from zero.

Two clients do the HTTP. ``huggingface_hub`` (the optional ``[download]`` extra) is the well-kept one: it follows
the hub's redirects to its storage, retries, and resumes within a call (from what it wrote to disk, in 10 MB
blocks), but drops its partial file when it gives up. Without it (or with ``client="urllib"``) a small standard
library client written here does the same job, and keeps ``FILE.part`` so that the next call resumes it.
"""
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

REGISTRY_FILE = Path(__file__).with_name("registry.json")
WEIGHTS_ENV = "MINFLAUBERT_WEIGHTS"
CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 30  # per socket operation: a stalled server becomes an error, never a hang
HF_HUB_MIN_MAJOR = 2  # RemoteEntryNotFoundError and hf_hub_download(tqdm_class=) as used below; tested with 2.4
ATTEMPTS = 3  # urllib client: transfers tried (each one resuming the previous) before giving up


# ----------------------------------------------------------------------------------------------------------------
# The registry and where checkpoints live
# ----------------------------------------------------------------------------------------------------------------


def registry() -> dict:
    """The published checkpoints keyed by local name (``flaubert_base_cased``), as in ``registry.json``."""
    with open(REGISTRY_FILE, encoding="utf-8") as f:
        return json.load(f)["checkpoints"]


def checkpoint(name: str) -> dict:
    """One registry entry, by local name or hub id (``flaubert/flaubert_base_cased``), plus its ``name``."""
    known = registry()
    local = name.removeprefix("flaubert/")
    if local not in known:
        raise ValueError(f"unknown checkpoint {name!r}; the published ones are: {', '.join(known)}")
    return {"name": local, **known[local]}


def weights_root() -> Path:
    """The folder holding one sub-folder per downloaded checkpoint.

    ``$MINFLAUBERT_WEIGHTS`` if set; else the checkout's ``weights/`` when running from a source checkout (where
    the README and the integration test expect them); else ``~/.cache/minflaubert`` for an installed package,
    whose own folder may not be writable.
    """
    if os.environ.get(WEIGHTS_ENV):
        return Path(os.environ[WEIGHTS_ENV]).expanduser()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "weights").is_dir():
        return checkout / "weights"
    return Path.home() / ".cache" / "minflaubert"


def resolve_name(name_or_folder) -> Path:
    """The folder of a checkpoint: an existing folder as-is, a registry name as ``weights_root()/NAME``.

    A registry name whose folder is missing or incomplete raises ``OSError`` with the exact command that fixes it.
    """
    path = Path(name_or_folder).expanduser()
    if path.is_dir():
        return path
    try:
        entry = checkpoint(str(name_or_folder))
    except ValueError as e:
        raise FileNotFoundError(f"{name_or_folder!r} is neither an existing folder nor a published checkpoint: {e}")
    folder = weights_root() / entry["name"]
    missing = [f["name"] for f in entry["files"] if f["required"] and not (folder / f["name"]).is_file()]
    if missing:
        raise OSError(
            f"checkpoint {entry['name']} is not downloaded ({folder} lacks {', '.join(missing)}). Download it with:\n"
            f"    minflaubert download {entry['name']}"
        )
    return folder


# ----------------------------------------------------------------------------------------------------------------
# Downloading
# ----------------------------------------------------------------------------------------------------------------


def download(name: str, dest=None, endpoint: str | None = None, progress: bool = True, client: str = "auto") -> Path:
    """Fetch the files of checkpoint ``name`` into ``dest`` (default ``weights_root()/NAME``) and return it.

    ``endpoint`` defaults to ``$HF_ENDPOINT`` then https://huggingface.co. ``client`` is ``"huggingface_hub"``,
    ``"urllib"`` or ``"auto"`` (the first when a version it supports is installed). Files already present are kept (re-verified when their
    sha256 is known); optional files the hub does not have (404) are skipped.
    """
    entry = checkpoint(name)
    dest = Path(dest) if dest is not None else weights_root() / entry["name"]
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    fetch = _pick_client(client)
    dest.mkdir(parents=True, exist_ok=True)
    for spec in entry["files"]:
        target = dest / spec["name"]
        if target.is_file():
            _check_sha256(target, spec["sha256"])
            continue
        found = fetch(endpoint, entry, spec["name"], target, progress)
        if not found and spec["required"]:
            url = _url(endpoint, entry, spec["name"])
            raise OSError(f"{url} does not exist (404), but {entry['name']} needs {spec['name']}")
        if not found:
            _say(progress, f"{spec['name']}: not published for {entry['name']}, skipped")
    return dest


def _url(endpoint: str, entry: dict, filename: str) -> str:
    """Where the hub serves one file of one revision (the same URL ``huggingface_hub`` builds)."""
    return f"{endpoint}/{entry['repo_id']}/resolve/{entry['revision']}/{filename}"


def _pick_client(client: str):
    """The fetch function of the chosen HTTP client (see the module docstring for why there are two)."""
    if client == "auto":
        client = "huggingface_hub" if _hf_hub_usable() else "urllib"
    elif client == "huggingface_hub" and not _hf_hub_usable():
        raise ImportError(f"client='huggingface_hub' needs huggingface_hub>={HF_HUB_MIN_MAJOR}: "
                          "pip install 'minflaubert[download]'")
    clients = {"huggingface_hub": _fetch_with_hf_hub, "urllib": _fetch_with_urllib}
    if client not in clients:
        raise ValueError(f"unknown client {client!r}; choose one of auto, {', '.join(clients)}")
    return clients[client]


def _hf_hub_usable() -> bool:
    """Whether huggingface_hub is installed in a version whose API ``_fetch_with_hf_hub`` was written for."""
    try:
        import huggingface_hub
    except ImportError:
        return False
    return int(huggingface_hub.__version__.split(".")[0]) >= HF_HUB_MIN_MAJOR


def _publish(part: Path, target: Path, sha256: str | None, progress: bool) -> None:
    """Verify a complete temporary file, flush it to disk, then give it its final name in one atomic rename.

    ``os.replace`` within one folder is atomic: readers see either no file or the whole file. The fsync before it
    makes sure that after a power cut the renamed file does not turn out empty.
    """
    try:
        _check_sha256(part, sha256, final_name=target.name)
    except ValueError:
        part.unlink()
        raise
    if sha256 is None:
        _say(progress, f"{target.name}: no known sha256, NOT verified")
    with open(part, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(part, target)


def _check_sha256(path: Path, expected: str | None, final_name: str | None = None) -> None:
    """Raise ``ValueError`` naming the file and both digests when ``path`` does not hash to ``expected``."""
    if expected is None:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    actual = digest.hexdigest()
    if actual != expected.lower():
        raise ValueError(f"checksum mismatch for {final_name or path}: expected sha256 {expected}, got {actual}")


def _say(progress: bool, message: str) -> None:
    """A one-line note for the user, silent like the progress bars when ``progress`` is off."""
    if progress:
        tqdm.write(message, file=sys.stderr)  # stdout is for results (the CLI prints JSON there)


# --- client 1: huggingface_hub ----------------------------------------------------------------------------------


def _fetch_with_hf_hub(endpoint: str, entry: dict, filename: str, target: Path, progress: bool) -> bool:
    """Download one file with ``huggingface_hub.hf_hub_download``; ``False`` when the hub has no such file.

    It writes into a private temporary folder beside ``target`` (same filesystem, so publishing is a rename):
    ``hf_hub_download`` is itself atomic, but our sha256 check must run *before* the file takes its final name.
    ``token=False``: the checkpoints are public, so no credential is ever read or sent.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError

    url = _url(endpoint, entry, filename)
    staging = Path(tempfile.mkdtemp(prefix=f".{filename}.", dir=target.parent))
    try:
        downloaded = hf_hub_download(
            entry["repo_id"], filename, revision=entry["revision"], endpoint=endpoint, local_dir=staging,
            token=False, tqdm_class=None if progress else _SilentTqdm,
        )
        _publish(Path(downloaded), target, _sha256_of(entry, filename), progress)
        return True
    except RemoteEntryNotFoundError:
        return False
    except LocalEntryNotFoundError as e:  # what hf_hub_download raises when the server cannot be reached
        raise OSError(f"cannot download {url}: offline or unreachable ({e})") from e
    except (OSError, ValueError):  # its other errors (and our checksum error) already say what went wrong
        raise
    except Exception as e:  # its HTTP library's transport errors (connection reset...) are not OSErrors
        raise OSError(f"cannot download {url}: transfer failed ({type(e).__name__}: {e})") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _sha256_of(entry: dict, filename: str) -> str | None:
    """The sha256 the registry knows for one file of a checkpoint (``None`` when unknown)."""
    return next(f["sha256"] for f in entry["files"] if f["name"] == filename)


class _SilentTqdm(tqdm):
    """A progress bar that never draws: how ``progress=False`` reaches ``hf_hub_download``."""

    def __init__(self, *args, **kwargs):
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)


# --- client 2: urllib (standard library only) -------------------------------------------------------------------


def _fetch_with_urllib(endpoint: str, entry: dict, filename: str, target: Path, progress: bool) -> bool:
    """Download one file into ``target.part``, resuming it, then publish it; ``False`` on 404.

    An interrupted transfer is retried (resuming) a few times; if it still fails the ``.part`` is kept so that
    running the download again continues from there.
    """
    url = _url(endpoint, entry, filename)
    part = target.with_name(target.name + ".part")
    for attempt in range(1, ATTEMPTS + 1):
        try:
            if not _transfer(url, part, progress):
                return False
            break
        except _Interrupted as e:
            if attempt == ATTEMPTS:
                raise OSError(f"{e}; run the download again to resume from the {part.name} kept") from e
            time.sleep(0.2 * attempt)
    _publish(part, target, _sha256_of(entry, filename), progress)
    return True


class _Interrupted(OSError):
    """A transfer that stopped before the end: worth resuming."""


def _transfer(url: str, part: Path, progress: bool) -> bool:
    """Append the bytes of ``url`` that ``part`` does not have yet; ``False`` on 404.

    Resuming asks for ``Range: bytes=N-`` where N is the size of ``part``. The server answers 206 with the rest,
    or 200 with the whole file when it ignores ranges (then we start over), or 416 when there is nothing left.
    """
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return False
        if e.code == 416 and _size_from_content_range(e.headers) == have:
            return True  # part already holds the whole file (a crash between download and rename)
        raise OSError(f"cannot download {url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        raise OSError(f"cannot download {url}: offline or unreachable ({getattr(e, 'reason', e)})") from e
    with response:
        if response.status == 200:
            have = 0  # a full answer: whatever part held is replaced
        elif not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            raise OSError(f"cannot resume {url}: the server sent {response.headers.get('Content-Range')!r}")
        _copy_body(response, part, have, url, progress)
    return True


def _copy_body(response, part: Path, have: int, url: str, progress: bool) -> None:
    """Stream a response body into ``part`` (after its first ``have`` bytes) with a progress bar.

    The length check matters: when a server closes the connection early, ``read`` just returns nothing, so
    counting the bytes is the only way to tell an interrupted transfer from a finished one.
    """
    length = response.headers.get("Content-Length")
    total = have + int(length) if length is not None else None
    done = have
    with open(part, "ab" if have else "wb") as f, tqdm(
        total=total, initial=have, unit="B", unit_scale=True, desc=part.name[: -len(".part")], disable=not progress
    ) as bar:
        try:
            while chunk := response.read(CHUNK_BYTES):
                f.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
        except OSError as e:  # connection reset, timeout while reading
            raise _Interrupted(f"transfer of {url} interrupted after {done} bytes ({e})") from e
    if total is not None and done != total:
        raise _Interrupted(f"transfer of {url} interrupted after {done} of {total} bytes")


def _size_from_content_range(headers) -> int | None:
    """The full size from a ``Content-Range: bytes */SIZE`` header, ``None`` when absent or unreadable."""
    value = (headers or {}).get("Content-Range", "")
    size = value.rpartition("/")[2]
    return int(size) if size.isdigit() else None
