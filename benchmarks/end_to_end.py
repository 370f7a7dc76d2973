"""Text to vectors, end to end: N French lines -> one mean-pooled vector per line, tokenizer included.

    PYTHONPATH=. python benchmarks/end_to_end.py --runs 3

What a user waits for when embedding a list of texts, on the flaubert_base architecture, same batch size (32),
truncation at 512 tokens, 2 threads. All engines run in ONE process, alternating run by run (so every engine sees the
same machine load), each run after a short pause (``--settle``, see encoder.py); printed: the median of ``--runs``
runs after one warm-up run, as lines/s and as a ratio to transformers' time (below 1 = faster), in a Markdown table.
Loading the model is not timed (``benchmarks/cold_start.py`` measures it). The engines:

- **minflaubert**: ``FlaubertModel.encode(lines, batch_size=32, pooling="mean")``, the library's public call for
  sentence vectors (README, "Sentence vectors"). It tokenizes with minflaubert's tokenizer and sorts the lines by
  length into batches itself; the other engines get the lines in their order, as their users would feed them.
- **transformers**: ``transformers.pipeline("feature-extraction")`` on PyTorch, each line's token vectors averaged
  over its real tokens. subtle: with ``batch_size`` > 1 the pipeline returns each line's vectors padded to the
  longest line of its batch, so ``tokens[0].mean(0)`` would average the padding in too; a four-line subclass
  (``MeanPooling``) pools inside the forward pass, under the attention mask.
- **onnxruntime** (if installed, ``pip install -e '.[benchmark]'``): transformers' ``FlaubertTokenizer`` (what an
  ONNX Runtime user has at hand, and the same as the transformers engine's, so the two differ by the runtime only)
  pads each batch, ``encoder.py``'s ONNX export of the model runs it, and the vectors are averaged under the mask.
- **onnxruntime, sorted by length**: the same, with the lines batched by length as minflaubert batches them (all
  tokenized first, then sorted): the like-for-like comparison with minflaubert's engine.

The warm-up run also checks that the engines agree: the largest difference of any vector to transformers' is
printed, and the script fails if it exceeds 1e-3 of the largest value.

The model is ``encoder.py``'s checkpoint (random weights from transformers, saved once in the same folder;
throughput does not depend on the values of the weights). The tokenizer: the published ``flaubert_base_uncased``
vocabulary and merges from ``../shared/data`` if present (67,542 tokens), else the shipped ``weights/flaubert_tiny``
ones (16,000): either fits in the model's 68,729-row embedding table. They are copied into the checkpoint folder
with a ``tokenizer_config.json`` of our own (lowercase, 512 tokens at most), so both libraries read the same
settings. The lines: the first ``--lines`` non-empty lines of ``../shared/data/corpus/heldout/*.txt`` then
``train/*.txt`` (paragraphs of 19th-century novels); without that folder, a few built-in French sentences, repeated.
The first output line says which model, tokenizer and lines ran.

``--tiny``: encoder.py's tiny model (its vocabulary has the shipped tokenizer's size) with the shipped tokenizer;
it checks that the script works (the tests run it), its times mean nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np

from common import REPO, SHARED, SHIPPED, architecture, blas_info, default_folder, markdown_table, median_times, ratio
from encoder import build, onnx_session

MAX_LENGTH = 512
TOLERANCE = 1e-3  # of the largest vector value: float32 sums in another order differ by ~1e-6
BUILT_IN = [
    "Le chat dort sur le canapé depuis ce matin.",
    "Paris est la capitale de la France, et sa plus grande ville.",
    "Il leva les yeux vers le ciel et vit que la nuit tombait déjà sur la campagne.",
    "Nous partirons demain à l'aube, si le temps le permet.",
    "Elle relut la lettre trois fois avant de la jeter au feu, sans un mot.",
    "Les enfants couraient dans la cour de l'école en criant.",
    "Au bout du chemin, une vieille maison aux volets verts attendait ses visiteurs.",
    "Quelle heure est-il ?",
]


def read_lines(count: int) -> tuple[list[str], str]:
    """The first ``count`` non-empty lines of the corpus (held-out book first, then the training books, in name
    order) -> (lines, where they came from). Without the corpus: the built-in sentences, repeated to ``count``."""
    corpus = SHARED / "corpus"
    lines = []
    for path in [*sorted((corpus / "heldout").glob("*.txt")), *sorted((corpus / "train").glob("*.txt"))]:
        with path.open(encoding="utf-8") as file:
            lines += [line.rstrip("\n") for line in file if line.strip()]
        if len(lines) >= count:
            break
    if lines:
        return lines[:count], f"{shown(corpus)} (heldout, then train)"
    repeated = [BUILT_IN[i % len(BUILT_IN)] for i in range(count)]
    return repeated, f"{len(BUILT_IN)} built-in French sentences, repeated (no corpus at {shown(corpus)})"


def shown(path: Path) -> str:
    """A path as the output shows it: from the repository (``../shared/data/...``), as the docstring names it."""
    return os.path.relpath(path, REPO)


def add_tokenizer(folder: Path, tiny: bool) -> str:
    """Copy the tokenizer's files into the checkpoint folder (see the docstring for which); -> its description."""
    published = SHARED / "flaubert_base_uncased"
    source = SHIPPED if tiny or not (published / "vocab.json").is_file() else published
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(source / name, folder / name)
    # subtle: the published config spells "do_lower_case", which transformers' FlaubertTokenizer does not read
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "FlaubertTokenizer", "do_lowercase": True, "model_max_length": MAX_LENGTH}))
    size = len(json.loads((folder / "vocab.json").read_text(encoding="utf-8")))
    return f"{shown(source)} ({size:,} tokens)"


def mean_over_mask(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[batch, seq, dim] token vectors, [batch, seq] attention mask -> [batch, dim]: each row's real tokens' mean."""
    mask = mask[..., None].astype(hidden.dtype)
    return (hidden * mask).sum(axis=1) / mask.sum(axis=1)


def transformers_engine(model, tokenizer, lines: list[str], batch_size: int):
    """transformers' feature-extraction pipeline, pooled under the attention mask (see the docstring for why)."""
    import transformers

    class MeanPooling(transformers.FeatureExtractionPipeline):
        def _forward(self, model_inputs):
            hidden = self.model(**model_inputs).last_hidden_state
            mask = model_inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            return {"vector": (hidden * mask).sum(1) / mask.sum(1)}  # [batch, dim]; the pipeline splits the rows

        def postprocess(self, model_outputs, return_tensors=False):
            return model_outputs["vector"]  # [1, dim]

    extract = transformers.pipeline("feature-extraction", model=model, tokenizer=tokenizer, device="cpu",
                                    pipeline_class=MeanPooling,
                                    tokenize_kwargs={"truncation": True, "max_length": MAX_LENGTH})
    return lambda: np.concatenate([vector.numpy() for vector in extract(lines, batch_size=batch_size)])


def onnx_engine(session, tokenizer, lines: list[str], batch_size: int):
    """transformers' tokenizer pads each batch of lines (in order), ONNX Runtime runs it, the mask pools it."""
    def run():
        vectors = []
        for start in range(0, len(lines), batch_size):
            batch = tokenizer(lines[start:start + batch_size], padding=True, truncation=True, max_length=MAX_LENGTH,
                              return_tensors="np")
            inputs = {name: batch[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
            vectors.append(mean_over_mask(session.run(None, inputs)[0], inputs["attention_mask"]))
        return np.concatenate(vectors)
    return run


def onnx_sorted_engine(session, tokenizer, lines: list[str], batch_size: int):
    """The same, but as minflaubert does it: every line tokenized first, then batched by length (less padding),
    the vectors put back in the lines' order. The like-for-like comparison with minflaubert's engine."""
    def run():
        ids = tokenizer(lines, truncation=True, max_length=MAX_LENGTH)["input_ids"]
        order = np.argsort([len(row) for row in ids], kind="stable")
        pooled = []
        for start in range(0, len(lines), batch_size):
            batch = tokenizer.pad({"input_ids": [ids[i] for i in order[start:start + batch_size]]},
                                  return_tensors="np")
            inputs = {name: batch[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
            pooled.append(mean_over_mask(session.run(None, inputs)[0], inputs["attention_mask"]))
        in_length_order = np.concatenate(pooled)
        vectors = np.empty_like(in_length_order)
        vectors[order] = in_length_order
        return vectors
    return run


def load_engines(args, lines: list[str]) -> dict:
    """Each engine as a function of no argument: it embeds all ``lines`` -> [len(lines), dim] float32."""
    import torch
    import transformers

    from minflaubert import FlaubertModel

    torch.set_num_threads(args.threads)
    reference = build(args.folder, args.config)
    tokenizer = transformers.FlaubertTokenizer.from_pretrained(str(args.folder))
    ours = FlaubertModel.from_pretrained(args.folder)
    engines = {
        "transformers": transformers_engine(reference, tokenizer, lines, args.batch_size),
        "minflaubert": lambda: ours.encode(lines, batch_size=args.batch_size, pooling="mean",
                                           max_length=MAX_LENGTH, progress=False),
    }
    session = None if args.no_onnx else onnx_session(reference, args.folder, args.threads)
    if session is not None:
        engines["onnxruntime"] = onnx_engine(session, tokenizer, lines, args.batch_size)
        engines["onnxruntime, sorted by length"] = onnx_sorted_engine(session, tokenizer, lines, args.batch_size)
    return engines


def check_agreement(engines: dict) -> str:
    """Run each engine once (the warm-up) and compare its vectors with transformers'; -> the line to print."""
    vectors = {name: run() for name, run in engines.items()}
    expected = vectors["transformers"]
    scale = float(np.abs(expected).max())
    differences = {name: float(np.abs(vectors[name] - expected).max()) for name in engines if name != "transformers"}
    report = ", ".join(f"{name} {difference:.1e}" for name, difference in differences.items())
    worst = max(differences, key=differences.get)
    if differences[worst] > TOLERANCE * scale:
        raise SystemExit(f"the vectors disagree: max abs difference to transformers' {report}, more than "
                         f"{TOLERANCE:g} x the largest value ({scale:.3g})")
    return f"vectors agree: max abs difference to transformers' {report} (largest |value| {scale:.3g})"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="at most 64 (the ONNX export's batch limit)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folder", help="the checkpoint encoder.py saves (default: encoder.py's, for the size)")
    parser.add_argument("--no-onnx", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="a tiny model: checks the script runs")
    parser.add_argument("--settle", type=float, default=0.2, help="seconds of pause before each timed run")
    args = parser.parse_args()
    if args.batch_size > 64 and not args.no_onnx:
        parser.error("--batch-size: at most 64 with ONNX Runtime (encoder.py exports the model for 1..64 rows)")
    args.config = architecture(args.tiny)
    args.folder = Path(args.folder) if args.folder else default_folder(args.tiny)
    return args


def main():
    args = parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    lines, source = read_lines(args.lines)
    tokenizer = add_tokenizer(args.folder, args.tiny)
    engines = load_engines(args, lines)
    size = "x".join(str(args.config[key]) for key in ("emb_dim", "n_layers", "n_heads"))
    print(f"{len(lines):,} lines of {source}; tokenizer {tokenizer}; model {size} (random weights) in {args.folder}; "
          f"batch size {args.batch_size}, truncation at {MAX_LENGTH}, threads {args.threads}, median of {args.runs} "
          f"runs after 1 warm-up, settle {args.settle} s" + (", TINY model (times mean nothing)" if args.tiny else ""))
    print(blas_info())
    print(check_agreement(engines), flush=True)
    median = median_times(engines, args.runs, args.settle)
    names = {"transformers": 'transformers pipeline("feature-extraction"), torch',
             "minflaubert": "minflaubert FlaubertModel.encode",
             "onnxruntime": "transformers' tokenizer + onnxruntime",
             "onnxruntime, sorted by length": "transformers' tokenizer + onnxruntime, lines batched by length"}
    rows = [[names[name], f"{seconds:.2f}", f"{len(lines) / seconds:,.1f}", ratio(seconds, median["transformers"])]
            for name, seconds in median.items()]
    print(markdown_table(["engine", "seconds", "lines/s", "time / transformers'"], rows))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
