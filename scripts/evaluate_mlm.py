"""How much French a masked-language model learned: hide words of a book it never saw, count how often it finds them.

    python scripts/evaluate_mlm.py                        # weights/flaubert_tiny on L'Éducation sentimentale
    python scripts/evaluate_mlm.py --model some/folder --paragraphs 300 --seed 0

The text is Flaubert's *L'Éducation sentimentale* (``../shared/data/corpus/heldout/``), of which the shipped model saw
no line: ``--paragraphs`` paragraphs are drawn with ``--seed`` from those of at least ``--min-tokens`` tokens, each
cut to the model's maximum length. In each, 15 % of the ordinary tokens (not ``<s>``, ``</s>``, never fewer than one)
are replaced by the mask token, all at once, and the model ranks the whole vocabulary at every masked position:
top-1 counts the positions where its first choice is the hidden token, top-5 where the token is among its first five.

A second table measures by position: ``--windows`` windows of the model's full length (``model_max_length``), cut
from the book's paragraphs laid end to end (``</s>`` between two, as in training), masked the same way, with
top-1 and top-5 for each band of 64 positions (1-63, 64-127, 128-191, 192-255 for a model of 256). Paragraphs are
mostly shorter than 128 tokens, so the first table alone would never see whether the far positions were learned;
the last line compares the positions past the middle with those before it (the ratio a shipped model must keep
at 0.9 or more: ``tests/test_flaubert_tiny.py``).

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
    p.add_argument("--windows", type=int, default=200, help="full-length windows for the by-position table (0: none)")
    args = p.parse_args(argv)
    for path in (args.heldout, args.train_corpus):
        if not Path(path).exists():
            p.error(f"{path} does not exist (the shared test data: see the model card)")
    if args.paragraphs < 1 or args.min_tokens < 3 or args.batch_size < 1 or args.windows < 0:
        p.error("--paragraphs and --batch-size must be positive, --windows not negative, --min-tokens at least 3")
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


def heldout_windows(tokenizer: FlaubertTokenizer, path: str, n: int, length: int,
                    rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` windows of ``length`` ids, ``<s> ... </s>``, cut from the book's paragraphs laid end to end with
    ``</s>`` between two (as ``scripts/train_tiny.py`` cuts its training text); drawn with ``rng``, in book order."""
    stream = []
    for text in read_paragraphs([path]):
        stream.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        stream.append(tokenizer.sep_token_id)
    body = length - 2
    count = len(stream) // body
    if count < n:
        raise SystemExit(f"{path} has only {count} windows of {length} tokens, not {n}")
    return [np.asarray([tokenizer.cls_token_id, *stream[i * body:(i + 1) * body], tokenizer.sep_token_id])
            for i in sorted(rng.choice(count, size=n, replace=False))]


def position_bands(length: int, width: int = 64) -> list[tuple[int, int]]:
    """Bands of ``width`` positions covering 1 .. length - 2 (position 0 is ``<s>``): ``[(first, last), ...]``."""
    return [(max(1, start), min(start + width, length - 1) - 1) for start in range(0, length - 1, width)]


def accuracy_by_position(top5: np.ndarray, targets: np.ndarray, where: np.ndarray,
                         bands: list[tuple[int, int]]) -> list[tuple[int, float, float]]:
    """``(masked tokens, top-1, top-5)`` of the masked positions ``where`` that fall in each band."""
    rows = []
    for first, last in bands:
        inside = (where >= first) & (where <= last)
        rows.append((int(inside.sum()), *accuracy(top5[inside], targets[inside])))
    return rows


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
    print_overall_table(name, rows, targets, model_top5, baseline_top5, frequent, tokenizer, args)
    if args.windows:
        print_position_table(model, tokenizer, args, rng)


def print_overall_table(name, rows, targets, model_top5, baseline_top5, frequent, tokenizer, args) -> None:
    print(f"{len(rows)} paragraphs of {Path(args.heldout).name}, {len(targets)} masked tokens (seed {args.seed})\n")
    print("| model | top-1 | top-5 |")
    print("|---|---|---|")
    for label, top5 in [(name, model_top5), ("most frequent tokens: " + " ".join(
            f"`{tokenizer.convert_ids_to_tokens(int(t))}`" for t in frequent), baseline_top5)]:
        top1, top5_share = accuracy(top5, targets)
        print(f"| {label} | {100 * top1:.1f} % | {100 * top5_share:.1f} % |")


def print_position_table(model, tokenizer: FlaubertTokenizer, args, rng: np.random.Generator) -> None:
    """The by-position table: top-1 and top-5 per band of positions, on windows of the model's full length."""
    length = tokenizer.model_max_length
    windows = heldout_windows(tokenizer, args.heldout, args.windows, length, rng)
    masked, positions = zip(*(mask_row(row, tokenizer.mask_token_id, rng) for row in windows))
    targets = np.concatenate([row[where] for row, where in zip(windows, positions)])
    top5 = top5_of_model(model, list(masked), list(positions), tokenizer.pad_token_id, args.batch_size)
    where = np.concatenate(positions)
    print(f"\nby position: {len(windows)} windows of {length} tokens, {len(targets)} masked tokens\n")
    print("| positions | masked | top-1 | top-5 |")
    print("|---|---|---|---|")
    for (first, last), (count, top1, top5_share) in zip(position_bands(length),
                                                         accuracy_by_position(top5, targets, where,
                                                                              position_bands(length))):
        print(f"| {first}-{last} | {count} | {100 * top1:.1f} % | {100 * top5_share:.1f} % |")
    middle = length // 2
    (_, near, _), (_, far, _) = accuracy_by_position(top5, targets, where, [(1, middle - 1), (middle, length - 2)])
    print(f"\ntop-1 at positions {middle}-{length - 2} / top-1 at 1-{middle - 1}: {far / near:.2f}")


if __name__ == "__main__":
    sys.exit(main())
