"""Where a checkpoint comes from: a folder on disk, or a repository of the Hugging Face hub, through its cache.

``from_pretrained(NAME)`` (every class, the tokenizer, the pipelines) calls ``resolve_name``, which turns NAME into
a folder holding the files:

1. an existing folder is used as it is;
2. a plain name that is a folder under ``weights_root()`` (``weights/`` in a checkout) is that folder: a model
   trained or copied there;
3. ``folder/name`` where ``folder`` exists here but ``name`` is not in it is a mistyped path: an error, at once;
4. anything else is a hub repository id (``owner/name``; the four published short names, ``flaubert_base_cased``...,
   are aliases of ``flaubert/NAME``), fetched with ``huggingface_hub.hf_hub_download``.

Why huggingface_hub rather than our own HTTP client: its cache (``~/.cache/huggingface/hub``, or ``$HF_HOME/hub``)
is the one transformers uses, so a fine-tune that transformers downloaded loads here with no download at all, and
one we download, transformers reads. In that cache each repository is a folder ``models--OWNER--NAME`` with

* ``blobs/``: the files' bytes, each named by its ETag (the git sha1 of a small file, the sha256 of a large one);
* ``refs/main``: the commit a branch or tag pointed to when last asked;
* ``snapshots/COMMIT/``: one folder per commit, each file a symbolic link into ``blobs/``.

A snapshot folder looks exactly like a folder written by ``save_pretrained``, so the rest of minflaubert never
knows where its files came from. The guarantees of a download:

* **atomic**: huggingface_hub writes into a temporary ``*.incomplete`` file and renames it, so a cut transfer never
  leaves a half file under a final name;
* **resumable**: an interrupted transfer is continued with an HTTP ``Range`` request, a few times within the call;
  a call that finally gives up deletes its partial file (the next call starts the file over);
* **verified**: a freshly downloaded file is hashed and compared with its ETag (``verify_blob``); a mismatch deletes
  it. huggingface_hub itself only checks the size.

Offline (``HF_HUB_OFFLINE=1``, or ``local_files_only=True``) no request is made: the cache answers, or the error
says which repository is missing and how to fetch it.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import sysconfig
from pathlib import Path

REGISTRY_FILE = Path(__file__).with_name("registry.json")
WEIGHTS_ENV = "MINFLAUBERT_WEIGHTS"
CHUNK_BYTES = 1 << 20
HUB_OPTIONS = ("revision", "cache_dir", "local_files_only", "token", "force_download")  # from_pretrained's

CONFIG_FILE = "config.json"
# The weight files a repository may have, in the order they are looked for (the first one found is used):
# safetensors first (memory-mapped, no pickle), then PyTorch's pickles (read by torch_pickle's safe unpickler).
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json",
                "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("vocab.json", "merges.txt")
OPTIONAL_TOKENIZER_FILES = ("tokenizer_config.json",)
PARTS = ("config", "model", "tokenizer")  # what resolve_name can be asked to fetch


def check_keywords(where: str, given, valid) -> None:
    """A TypeError for the first keyword argument not in ``valid``, worded as Python's own, plus the closest valid
    name: a misspelt option (``num_lables=3``) must fail loudly, never be silently ignored."""
    for name in given:
        if name not in valid:
            close = difflib.get_close_matches(name, list(valid), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"{where}() got an unexpected keyword argument {name!r}{hint}")


# ----------------------------------------------------------------------------------------------------------------
# Names: folders, the published aliases, repository ids
# ----------------------------------------------------------------------------------------------------------------


def registry() -> dict:
    """The published checkpoints keyed by short name (``flaubert_base_cased``), as in ``registry.json``."""
    with open(REGISTRY_FILE, encoding="utf-8") as f:
        return json.load(f)["checkpoints"]


def repo_id_of(name: str) -> str:
    """The hub repository a name stands for: a published short name's ``flaubert/NAME``, else the name itself."""
    entry = registry().get(name)
    return entry["repo_id"] if entry else name


def weights_root() -> Path:
    """The folder of local checkpoints that plain names are looked up in first.

    ``$MINFLAUBERT_WEIGHTS`` if set; else the checkout's ``weights/`` when running from a source checkout; else
    ``~/.cache/minflaubert`` for an installed package, whose own folder may not be writable.
    """
    if os.environ.get(WEIGHTS_ENV):
        return Path(os.environ[WEIGHTS_ENV]).expanduser()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "weights").is_dir():
        return checkout / "weights"
    return Path.home() / ".cache" / "minflaubert"


SHIPPED_MODEL = "flaubert_tiny"  # trained in this repository (scripts/train_tiny.py); the default of the pipelines


def shipped_model() -> Path:
    """The folder of ``weights/flaubert_tiny``, the small FlauBERT this project trains and ships: the model the
    pipelines and the command line use when none is given, with no network.

    In a source checkout (``pip install -e .`` included) it is the checkout's ``weights/flaubert_tiny``; an installed
    wheel carries it as data files, under the environment's ``share/minflaubert/`` (``pyproject.toml``'s
    ``data-files``).
    """
    candidates = [Path(__file__).resolve().parents[2] / "weights" / SHIPPED_MODEL,
                  Path(sysconfig.get_path("data")) / "share" / "minflaubert" / SHIPPED_MODEL]
    for folder in candidates:
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise FileNotFoundError(f"the shipped model {SHIPPED_MODEL} is missing from this installation (looked in "
                            f"{', '.join(map(os.fspath, candidates))}): reinstall minflaubert, or pass a model")


def resolve_name(name_or_folder, parts=("model",), *, revision=None, cache_dir=None, local_files_only=False,
                 token=None, force_download=False, progress=True) -> Path:
    """The folder holding a checkpoint's files: a folder as it is, else a repository fetched into the hub cache.

    ``parts`` says which files a repository must provide: ``"config"`` (config.json), ``"model"`` (config.json and
    the weights) and/or ``"tokenizer"`` (vocab.json, merges.txt and tokenizer_config.json when it has one). The
    keyword arguments are those of transformers' ``from_pretrained``, passed on to huggingface_hub.
    """
    if isinstance(parts, str):
        parts = (parts,)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown parts {unknown}; choose among {PARTS}")
    from .atomic import readable_folder

    path = readable_folder(Path(name_or_folder).expanduser())  # (finishing a save a crash interrupted)
    if path.is_dir():
        return path
    if not isinstance(name_or_folder, str):  # a Path names a folder, never a repository
        raise FileNotFoundError(f"{os.fspath(name_or_folder)!r} is neither an existing folder nor a repository id")
    local = weights_root() / name_or_folder
    if "/" not in name_or_folder and local.is_dir():
        return local
    if path.parent.name and path.parent.is_dir():  # "weights/my_model" beside a folder "weights": a path, mistyped
        raise FileNotFoundError(f"{name_or_folder!r} is neither an existing folder nor a repository id: there is no "
                                f"{path.name!r} in the folder {os.fspath(path.parent)!r} (read as a path, since that "
                                "folder exists)")
    hub = _Hub(name_or_folder, revision, cache_dir, local_files_only, token, force_download, progress)
    return hub.fetch(parts)


def download(name: str, revision=None, cache_dir=None, token=None, force_download=False, progress=True) -> Path:
    """Fetch a repository's model and tokenizer files into the hub cache; returns its snapshot folder."""
    return resolve_name(name, ("model", "tokenizer"), revision=revision, cache_dir=cache_dir, token=token,
                        force_download=force_download, progress=progress)


# ----------------------------------------------------------------------------------------------------------------
# Fetching through huggingface_hub
# ----------------------------------------------------------------------------------------------------------------


class _Hub:
    """One repository at one revision, and the options of every ``hf_hub_download`` call made for it.

    ``name`` is what the user wrote (a repository id or a published short name): error messages repeat it.
    """

    def __init__(self, name, revision, cache_dir, local_files_only, token, force_download, progress):
        from huggingface_hub import constants
        from huggingface_hub.utils import validate_repo_id

        self.name, self.repo_id, self.revision = name, repo_id_of(name), revision or "main"
        try:
            validate_repo_id(self.repo_id)
        except ValueError:  # "./x", "a/b/c", "/abs": meant as a folder, which does not exist
            raise FileNotFoundError(f"{name!r} is neither an existing folder nor a repository id "
                                    f"('owner/name' on the hub)") from None
        self.cache_dir = Path(cache_dir or constants.HF_HUB_CACHE).expanduser()
        # subtle: read at each call, not once: huggingface_hub fixes HF_HUB_OFFLINE when it is imported.
        self.offline = bool(local_files_only) or constants.is_offline_mode()
        self.token, self.force_download, self.progress = token, force_download, progress

    def fetch(self, parts) -> Path:
        """Every file ``parts`` needs; returns the snapshot folder they all sit in."""
        config = self.file(CONFIG_FILE) if {"config", "model"} & set(parts) else None
        weights = self.weights() if "model" in parts else None
        tokenizer = [self.file(name) for name in TOKENIZER_FILES] if "tokenizer" in parts else []
        for name in OPTIONAL_TOKENIZER_FILES if "tokenizer" in parts else ():
            self.file(name, optional=True)
        return (config or weights or tokenizer[0]).parent

    def weights(self) -> Path:
        """The first weight file of ``WEIGHT_FILES`` the repository has, and the shards an index lists."""
        for name in WEIGHT_FILES:
            path = self.file(name, optional=True)
            if path is not None:
                if name.endswith(".index.json"):
                    for shard in _shards(path):
                        self.file(shard)
                return path
        where = "in the cache" if self.offline else "in the repository"
        raise OSError(f"{self.repo_id} (revision {self.revision}) has no weights {where}: looked for "
                      f"{', '.join(WEIGHT_FILES)}{self.how_to_download() if self.offline else ''}")

    def file(self, filename: str, optional: bool = False) -> Path | None:
        """One file of the repository, from the cache or downloaded (then verified); None when ``optional`` and
        the repository does not have it."""
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
        from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError

        cached = try_to_load_from_cache(self.repo_id, filename, cache_dir=self.cache_dir, revision=self.revision)
        try:
            path = Path(hf_hub_download(
                self.repo_id, filename, revision=self.revision, cache_dir=self.cache_dir, token=self.token,
                local_files_only=self.offline, force_download=self.force_download,
                tqdm_class=None if self.progress else _silent_tqdm()))
        except RemoteEntryNotFoundError:  # the repository exists, the file does not
            if optional:
                return None
            raise OSError(f"{self.repo_id} (revision {self.revision}) has no {filename}") from None
        except LocalEntryNotFoundError:
            if optional and self.offline:
                return None  # not among the files cached: perhaps the next candidate is
            raise self.unavailable(filename) from None
        except (ValueError, TypeError):  # a wrong argument (force_download with local_files_only...): it says which
            raise
        except Exception as error:  # noqa: BLE001 - turned into one clear OSError below, never swallowed
            raise self.failed(filename, error) from error
        if self.force_download or not isinstance(cached, str) or Path(cached) != path:
            verify_blob(path)  # it was just downloaded
        return path

    def unavailable(self, filename: str) -> OSError:
        """The error for a file neither in the cache nor downloadable: offline, or the hub out of reach."""
        if self.offline:
            return OSError(f"{self.repo_id} (revision {self.revision}) is not in the huggingface_hub cache "
                           f"{self.cache_dir} (it lacks {filename}), and downloads are off (HF_HUB_OFFLINE=1 or "
                           f"local_files_only=True){self.how_to_download()}")
        return OSError(f"cannot download {self.repo_id}/{filename}: the hub ({self.endpoint()}) is out of reach "
                       f"and the cache {self.cache_dir} does not have it{self.how_to_download()}")

    def failed(self, filename: str, error: Exception) -> OSError:
        """A huggingface_hub or HTTP error -> one message naming the repository, and what to do about it."""
        from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

        status = getattr(getattr(error, "response", None), "status_code", None)
        if isinstance(error, RepositoryNotFoundError) or status in (401, 403):
            return OSError(f"{self.repo_id!r} is not a local folder, and the hub ({self.endpoint()}) has no such "
                           f"repository or refuses access (HTTP {status}): check the name; a private or gated "
                           "repository needs token=... (or `hf auth login`)")
        if isinstance(error, RevisionNotFoundError):
            return OSError(f"{self.repo_id} has no revision {self.revision!r} (a branch, tag or commit hash)")
        if isinstance(error, HfHubHTTPError):
            return OSError(f"cannot download {self.repo_id}/{filename} from {self.endpoint()}: HTTP {status}")
        # what is left is the HTTP library's: a connection dropped more times than huggingface_hub retries
        return OSError(f"cannot download {self.repo_id}/{filename}: {type(error).__name__}: {error}")

    def how_to_download(self) -> str:
        """The end of an offline error message: the one command that fetches this checkpoint."""
        return (f". Download it once while online: `minflaubert download {self.name}` (or any transformers or "
                f"huggingface_hub download of it into the same cache)")

    @staticmethod
    def endpoint() -> str:
        """The hub address huggingface_hub uses (``HF_ENDPOINT`` if set), for error messages."""
        from huggingface_hub import constants

        return constants.ENDPOINT


def _shards(index_path: Path) -> list[str]:
    """The shard files a ``*.index.json`` lists in its ``weight_map``."""
    from .weights import read_weight_map

    return sorted(set(read_weight_map(index_path).values()))


def _silent_tqdm():
    """A progress bar class that never draws: how ``progress=False`` reaches ``hf_hub_download``."""
    from tqdm.auto import tqdm

    class SilentTqdm(tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": True})

    return SilentTqdm


# ----------------------------------------------------------------------------------------------------------------
# Verifying a download against its ETag
# ----------------------------------------------------------------------------------------------------------------


def verify_blob(path: Path) -> None:
    """Hash a freshly cached file and compare with the name of its blob, which is the file's ETag on the hub.

    The hub's ETag is a content hash: the sha256 of a large (LFS) file, the git blob sha1 of a small one (sha1 of
    ``b"blob SIZE\\0"`` + the bytes). A mismatch means the bytes are not what the hub published (a proxy, a disk):
    the blob and its snapshot link are deleted and ``ValueError`` names both digests. A blob named otherwise (a
    mirror with other ETags, a cache without symbolic links) has nothing to be compared with and is kept as is.
    """
    blob = path.resolve()
    expected = blob.name
    if len(expected) not in (40, 64) or any(c not in "0123456789abcdef" for c in expected):
        return
    digest = hashlib.sha256() if len(expected) == 64 else hashlib.sha1(b"blob %d\0" % blob.stat().st_size)
    with open(blob, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    if digest.hexdigest() != expected:
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        raise ValueError(f"checksum mismatch for {path.name}: the hub's ETag is {expected}, the downloaded bytes "
                         f"hash to {digest.hexdigest()} (deleted: download again)")
