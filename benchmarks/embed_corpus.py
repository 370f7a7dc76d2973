"""Embedding a corpus, end to end: lines per second and peak memory of ``minflaubert embed`` (one process, and
``--dask local:N``) next to transformers' feature-extraction pipeline on the same lines.

    python benchmarks/embed_corpus.py [--lines 20000] [--corpus ../shared/data/corpus/train] [--model FOLDER]
                                      [--batch-size 16] [--workers 2] [--transformers-python PYTHON]

Each engine runs as a fresh process over the same text file (the first ``--lines`` lines of the corpus's files
in name order), from start to exit: loading included, as a user waits for it. Peak memory is the largest sum of
the resident memory of the process and all its children (the Dask workers), sampled every 0.1 s.

The model: ``--model`` (any FlauBERT folder both libraries read, e.g. ``weights/flaubert_tiny``; for a pre-norm
model, ``--transformers-python`` must be a Python with transformers 4.57.6, as 5.23 cannot run pre-norm FlauBERT),
or by default a random post-norm FlauBERT of the shipped model's shape (256 x 4 layers x 4 heads) with the
published tokenizer of ``../shared/data/flaubert_base_uncased``, built once in a temporary folder by transformers.
Throughput does not depend on the values of the weights, only on the shapes.

The transformers side: ``pipeline("feature-extraction")`` with the same batch size, truncation at the model's
maximum length, each text's token vectors averaged (minflaubert's ``--pooling mean``), torch on 2 threads and on 1
(minflaubert's job runs each process on one BLAS thread, see ``minflaubert/apps/corpus.py``).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SHAPE = dict(emb_dim=256, n_layers=4, n_heads=4, max_position_embeddings=512)

TRANSFORMERS_RUN = """
import sys, numpy as np, torch, transformers
model, source, batch_size, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
extract = transformers.pipeline("feature-extraction", model=model, tokenizer=model, device="cpu",
                                tokenize_kwargs={"truncation": True}, return_tensors=True)
lines = open(source, encoding="utf-8").read().split("\\n")[:-1]
# subtle: with batch_size > 1 the pipeline pads each line's token vectors to its batch's longest: average the
# line's own tokens only
counts = [len(ids) for ids in extract.tokenizer(lines, truncation=True)["input_ids"]]
vectors = np.stack([tokens[0][:count].mean(0).numpy()
                    for tokens, count in zip(extract(lines, batch_size=batch_size), counts)])
print(vectors.shape, file=sys.stderr)
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=20_000, help="lines to embed (0: the whole corpus)")
    p.add_argument("--corpus", default=str(SHARED / "corpus" / "train"), help="a folder of .txt files")
    p.add_argument("--model", help="a FlauBERT folder (default: a random 256 x 4 model, built once)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="N of --dask local:N")
    p.add_argument("--transformers-python", default=sys.executable, help="a Python with torch and transformers")
    p.add_argument("--engines", default="minflaubert,dask,transformers,transformers1")
    args = p.parse_args()

    work = Path(tempfile.gettempdir()) / "minflaubert-bench-corpus"
    work.mkdir(exist_ok=True)
    model = Path(args.model) if args.model else random_model(work / "random-256x4", args.transformers_python)
    source, count = write_lines(Path(args.corpus), args.lines, work / "lines.txt")
    embed = [sys.executable, "-m", "minflaubert", "embed", source, "-o", work / "out", "--model", model,
             "--batch-size", args.batch_size, "--quiet", "--overwrite"]
    commands = {
        "minflaubert": embed,
        "dask": [*embed, "--dask", f"local:{args.workers}"],
        "transformers": [args.transformers_python, "-c", TRANSFORMERS_RUN, model, source, args.batch_size, 2],
        "transformers1": [args.transformers_python, "-c", TRANSFORMERS_RUN, model, source, args.batch_size, 1],
    }
    names = {"minflaubert": "minflaubert embed, 1 process", "dask": f"minflaubert embed --dask local:{args.workers}",
             "transformers": "transformers pipeline (torch, 2 threads)",
             "transformers1": "transformers pipeline (torch, 1 thread)"}
    print(f"{count:,} lines of {args.corpus}, model {model}, batch size {args.batch_size}")
    print("| engine | seconds | lines/s | peak RSS (MB) |\n|---|---|---|---|")
    for engine in args.engines.split(","):
        seconds, peak = measure([str(part) for part in commands[engine]])
        print(f"| {names[engine]} | {seconds:.1f} | {count / seconds:,.0f} | {peak / 2**20:,.0f} |", flush=True)


def write_lines(corpus: Path, limit: int, target: Path) -> tuple[Path, int]:
    """The first ``limit`` lines of the corpus's .txt files (name order) in one file; -> (file, line count)."""
    lines = []
    for path in sorted(corpus.glob("*.txt")):
        lines += path.read_text(encoding="utf-8").split("\n")[:-1]
        if limit and len(lines) >= limit:
            break
    lines = lines[:limit] if limit else lines
    target.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return target, len(lines)


def random_model(folder: Path, python: str) -> Path:
    """A random post-norm FlauBERT of SHAPE with the published uncased tokenizer, saved by transformers (once)."""
    if not (folder / "model.safetensors").is_file():
        tokenizer = SHARED / "flaubert_base_uncased"
        vocab_size = len(json.loads((tokenizer / "vocab.json").read_text(encoding="utf-8")))
        build = ("import sys, json, shutil, torch, transformers; torch.manual_seed(0); "
                 "folder, tokenizer, shape = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]); "
                 "transformers.FlaubertModel(transformers.FlaubertConfig(**shape)).save_pretrained(folder); "
                 "[shutil.copy(f'{tokenizer}/{name}', folder) for name in ('vocab.json', 'merges.txt')]")
        subprocess.run([python, "-c", build, str(folder), str(tokenizer),
                        json.dumps({**SHAPE, "vocab_size": vocab_size})], check=True)
        # subtle: the published file says "do_lower_case", which neither library's FlauBERT tokenizer reads
        (folder / "tokenizer_config.json").write_text(json.dumps(
            {"do_lowercase": True, "model_max_length": 512, "tokenizer_class": "FlaubertTokenizer"}))
    return folder


def measure(command: list[str]) -> tuple[float, int]:
    """Run ``command`` to its end -> (seconds, peak resident bytes of it and its children together)."""
    started = time.perf_counter()
    process = psutil.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss(process))
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"{' '.join(command[:4])}... failed:\n{process.stderr.read().decode()}")
    return seconds, peak


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:  # ended between the listing and the look
            pass
    return total


if __name__ == "__main__":
    main()
