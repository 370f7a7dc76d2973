"""How much French a masked-language model learned: hide words of a book it never saw, count how often it finds them.

    python scripts/evaluate_mlm.py                        # weights/flaubert_tiny on L'Éducation sentimentale
    python scripts/evaluate_mlm.py --model some/folder --paragraphs 300 --seed 0

The text is Flaubert's *L'Éducation sentimentale* (``../shared/data/corpus/heldout/``), of which the shipped model saw
no line: ``--paragraphs`` paragraphs are drawn with ``--seed`` from those of at least ``--min-tokens`` tokens, each
cut to the model's maximum length. In each, 15 % of the ordinary tokens (not ``<s>``, ``</s>``, never fewer than one)
are replaced by the mask token, all at once, and the model ranks the whole vocabulary at every masked position:
top-1 counts the positions where its first choice is the hidden token, top-5 where the token is among its first five.

The baseline is a model that has learned only how often each token occurs: it always proposes the tokens most
frequent in the training corpus (``--train-corpus``). A model that has learned nothing else scores exactly that,
which is where every run of ``scripts/train_tiny.py`` sits for its first minutes (the "unigram plateau").

The masks depend only on ``--seed``, so the table is the same on every machine (up to a near-tie flipping a rank).
The inference is minflaubert's own: no torch.
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

from minflaubert import FlaubertTokenizer, FlaubertWithLMHeadModel
from minflaubert.tokenization.bpe_train import read_paragraphs
from minflaubert.checkpoints.hub import shipped_model
from minflaubert.models.batching import pad

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus"  # ../shared beside the checkout
MASK_RATE = 0.15


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="checkpoint folder (default: the shipped weights/flaubert_tiny)")
    p.add_argument("--heldout", default=str(SHARED / "heldout" / "flaubert-education-sentimentale.txt"))
    p.add_argument("--train-corpus", default=str(SHARED / "train"),
                   help="folder of .txt files whose token frequencies make the baseline")
    p.add_argument("--paragraphs", type=int, default=300)
    p.add_argument("--min-tokens", type=int, default=20, help="skip shorter paragraphs (dialogue lines, titles)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args(argv)
    for path in (args.heldout, args.train_corpus):
        if not Path(path).exists():
            p.error(f"{path} does not exist (the shared test data: see the model card)")
    if args.paragraphs < 1 or args.min_tokens < 3 or args.batch_size < 1:
        p.error("--paragraphs and --batch-size must be positive, --min-tokens at least 3")
    return args


def heldout_rows(tokenizer: FlaubertTokenizer, path: str, n: int, min_tokens: int, max_length: int,
                 rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` paragraphs of the held-out book as ``<s> ... </s>`` id rows, drawn with ``rng``, in book order."""
    rows = [np.asarray(tokenizer(text, truncation=True, max_length=max_length)["input_ids"])
            for text in read_paragraphs([path])]
    rows = [row for row in rows if len(row) >= min_tokens]
    if len(rows) < n:
        raise SystemExit(f"{path} has only {len(rows)} paragraphs of {min_tokens} tokens or more, not {n}")
    return [rows[i] for i in sorted(rng.choice(len(rows), size=n, replace=False))]


def mask_row(row: np.ndarray, mask_id: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Hide 15 % of the ordinary tokens (never the first and last, ``<s>`` and ``</s>``): ``(masked row, positions)``.
    """
    inner = np.arange(1, len(row) - 1)
    positions = np.sort(rng.choice(inner, size=max(1, round(MASK_RATE * len(inner))), replace=False))
    masked = row.copy()
    masked[positions] = mask_id
    return masked, positions


def top5_of_model(model, rows: list[np.ndarray], positions: list[np.ndarray], pad_id: int,
                  batch_size: int) -> np.ndarray:
    """The model's five best tokens at every masked position, rows in order: ``[n_masked, 5]``."""
    best = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        ids = pad(batch, pad_id)  # [batch, longest]
        mask = pad([[1] * len(row) for row in batch], 0)
        logits = model(input_ids=ids, attention_mask=mask).logits  # [batch, seq, vocab]
        for i, where in enumerate(positions[start:start + batch_size]):
            scores = logits[i, where]  # [n_masked_here, vocab]
            top = np.argpartition(-scores, 5, axis=-1)[:, :5]
            order = np.argsort(-np.take_along_axis(scores, top, axis=-1), axis=-1, kind="stable")
            best.append(np.take_along_axis(top, order, axis=-1))
    return np.concatenate(best)


def most_frequent_tokens(tokenizer: FlaubertTokenizer, folder: str, k: int = 5) -> np.ndarray:
    """The ``k`` ordinary tokens that occur most often in the training corpus, most frequent first."""
    counts = collections.Counter()
    for text in read_paragraphs(sorted(Path(folder).glob("*.txt"))):
        counts.update(tokenizer(text, add_special_tokens=False)["input_ids"])
    return np.array([token for token, _ in counts.most_common(k)])


def accuracy(top5: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """``(top-1, top-5)``: the share of targets that are the first proposal, and that are among the five."""
    return float(np.mean(top5[:, 0] == targets)), float(np.mean((top5 == targets[:, None]).any(axis=1)))


def main(argv=None) -> None:
    args = parse_args(argv)
    folder = args.model or shipped_model()
    tokenizer = FlaubertTokenizer.from_pretrained(folder)
    model = FlaubertWithLMHeadModel.from_pretrained(folder)
    rng = np.random.default_rng(args.seed)
    rows = heldout_rows(tokenizer, args.heldout, args.paragraphs, args.min_tokens, tokenizer.model_max_length, rng)
    masked, positions = zip(*(mask_row(row, tokenizer.mask_token_id, rng) for row in rows))
    targets = np.concatenate([row[where] for row, where in zip(rows, positions)])

    model_top5 = top5_of_model(model, list(masked), list(positions), tokenizer.pad_token_id, args.batch_size)
    frequent = most_frequent_tokens(tokenizer, args.train_corpus)
    baseline_top5 = np.broadcast_to(frequent, (len(targets), 5))

    name = Path(folder).name
    print(f"{len(rows)} paragraphs of {Path(args.heldout).name}, {len(targets)} masked tokens (seed {args.seed})\n")
    print("| model | top-1 | top-5 |")
    print("|---|---|---|")
    for label, top5 in [(name, model_top5), ("most frequent tokens: " + " ".join(
            f"`{tokenizer.convert_ids_to_tokens(int(t))}`" for t in frequent), baseline_top5)]:
        top1, top5_share = accuracy(top5, targets)
        print(f"| {label} | {100 * top1:.1f} % | {100 * top5_share:.1f} % |")


if __name__ == "__main__":
    sys.exit(main())
