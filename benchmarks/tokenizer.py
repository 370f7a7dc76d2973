"""How fast is minflaubert's tokenizer compared with transformers' FlaubertTokenizer?

Both tokenizers encode every paragraph of a French novel (``../shared/data/corpus/chasse-galerie.txt``) with the
published uncased vocabulary, in the same process, in alternating runs (so both see the same machine load); we
report the median time of each and their ratio (below 1 = minflaubert is faster; the target is <= 0.5).

Each run builds fresh tokenizers, so the BPE caches start empty: the timing includes filling them, as it would when
tokenizing one document. Run:

    python benchmarks/tokenizer.py [--runs 7] [--profile]

``--profile`` also prints where minflaubert's time goes (cProfile, sorted by own time).
"""
import argparse
import cProfile
import pstats
import re
import statistics
import time
from pathlib import Path

from minflaubert.tokenization.tokenizer import FlaubertTokenizer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def paragraphs() -> list[str]:
    text = (DATA / "corpus" / "chasse-galerie.txt").read_text(encoding="utf-8")
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def time_once(make_tokenizer, texts) -> tuple[float, int]:
    """Seconds to encode ``texts`` one call per paragraph, with a fresh tokenizer; and the number of tokens."""
    tokenizer = make_tokenizer()
    start = time.perf_counter()
    n_tokens = sum(len(tokenizer(text)["input_ids"]) for text in texts)
    return time.perf_counter() - start, n_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    import transformers

    folder = DATA / "flaubert_base_uncased"
    files = (str(folder / "vocab.json"), str(folder / "merges.txt"))
    texts = paragraphs()

    def ours():
        return FlaubertTokenizer(*files, do_lowercase=True)

    def theirs():
        return transformers.FlaubertTokenizer(*files, do_lowercase=True)

    ours_times, theirs_times = [], []
    for _ in range(args.runs):
        t, n_ours = time_once(ours, texts)
        ours_times.append(t)
        t, n_theirs = time_once(theirs, texts)
        theirs_times.append(t)
    assert n_ours == n_theirs, (n_ours, n_theirs)
    ours_s, theirs_s = statistics.median(ours_times), statistics.median(theirs_times)
    chars = sum(map(len, texts))
    print(f"corpus: {len(texts)} paragraphs, {chars:,} characters, {n_ours:,} tokens; median of {args.runs} runs")
    print(f"transformers: {theirs_s * 1e3:8.1f} ms  ({n_ours / theirs_s:>9,.0f} tokens/s)")
    print(f"minflaubert:  {ours_s * 1e3:8.1f} ms  ({n_ours / ours_s:>9,.0f} tokens/s)")
    print(f"ratio minflaubert / transformers: {ours_s / theirs_s:.3f}  ({theirs_s / ours_s:.1f}x faster)")

    if args.profile:
        tokenizer = ours()  # built outside the profile: only encoding is measured (cold BPE cache, as above)
        profiler = cProfile.Profile()
        profiler.enable()
        for text in texts:
            tokenizer(text)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
