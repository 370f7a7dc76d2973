"""Train weights/flaubert_tiny: a BPE vocabulary, then masked-language modelling, on a laptop CPU.

    python -m venv .venv-train && .venv-train/bin/pip install -r scripts/train_requirements.txt
    PYTHONPATH=. .venv-train/bin/python scripts/train_tiny.py --corpus ../shared/data/corpus/train --work runs/tiny

    # the shipped model: that run (28,000 steps), then a continued phase at 256 tokens (see its model card)
    PYTHONPATH=. .venv-train/bin/python scripts/train_tiny.py --init-from weights/flaubert_tiny --work runs/long \
        --long-fraction 1 --steps 3000 --lr 5e-4 --warmup 200 --out weights/flaubert_tiny

What it does, in order (each step's result is kept in --work, so a cut run picks up where it stopped):

1. **Vocabulary**: :mod:`minflaubert.tokenization.bpe_train` learns ``--vocab-size`` BPE symbols from the corpus (uncased).
2. **Token stream**: every paragraph is tokenized with that vocabulary and the paragraphs are laid end to end,
   ``</s>`` between two; the stream is cut into sequences of ``--seq-len`` tokens framed by ``<s> ... </s>``, so no
   position is ever padding.
3. **Masked-language modelling**: each step takes ``--batch-size`` sequences (a fixed shuffle per epoch), replaces
   15 % of their ordinary tokens by the mask token and learns to predict them. The output projection (256 x vocab)
   runs only at the masked positions: at every position it would cost more than the encoder itself.
   AdamW, linear warm-up then linear decay to zero, gradient clipping, no dropout (the model sees the corpus a few
   times only, so there is nothing to regularise yet).
4. **Export**: weights in float16 safetensors (both transformers and minflaubert upcast them to float32 on load;
   ``config.json`` says ``torch_dtype: float32`` so that transformers' ``dtype="auto"`` does too), the tokenizer
   files, and ``training_log.csv``.

Reproducible: the data order and the masks of step ``s`` depend only on ``--seed`` and ``s``, and there is no
dropout, so ``--resume`` continues a cut run exactly (same losses, same weights). A checkpoint is written every
``--checkpoint-minutes`` (to a temporary name, then renamed).

The model is pre-norm, like flaubert_large. transformers 5.23 cannot run pre-norm FlauBERT (its pre-norm branch
indexes a cache object), so this script needs transformers 4.57.6; the package itself never imports either.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

try:
    import torch
    import transformers
except ImportError:
    sys.exit("train_tiny.py needs torch and transformers 4.57.6: pip install -r scripts/train_requirements.txt")

from minflaubert.tokenization.bpe_train import read_paragraphs, train_bpe_files
from minflaubert.tokenization.tokenizer import FlaubertTokenizer

MASK_RATE = 0.15
BOS, EOS, PAD, MASK = 0, 1, 2, 5
N_SPECIAL = 14  # ids 0-13 are special tokens, never masked nor predicted


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--corpus", default="../shared/data/corpus/train", help="folder of .txt files, one paragraph a line")
    p.add_argument("--heldout", default="../shared/data/corpus/heldout/flaubert-education-sentimentale.txt",
                   help="text never trained on, for the held-out accuracy in the log")
    p.add_argument("--work", default="runs/flaubert_tiny", help="vocabulary, token stream, checkpoints, log")
    p.add_argument("--out", default="weights/flaubert_tiny", help="where the finished model is exported")
    p.add_argument("--vocab-size", type=int, default=16000)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=128, help="tokens per sequence, <s> and </s> included")
    p.add_argument("--long-seq-len", type=int, default=256,
                   help="sequence length of the last --long-fraction of the steps (and the model's positions)")
    p.add_argument("--long-fraction", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=12000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-bf16", dest="bf16", action="store_false",
                   help="compute in float32 (bfloat16 autocast is ~2.7x faster on a CPU with AVX512-BF16)")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--init-from", default=None, metavar="FOLDER",
                   help="continued pretraining: start from an exported model (its weights, vocabulary and training\n"
                        "log) with a new optimizer and schedule; --long-fraction 1 trains every position at once")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --work")
    p.add_argument("--export-only", action="store_true", help="export the checkpoint in --work to --out and stop")
    p.add_argument("--stop-after", type=int, default=None, help="stop (with a checkpoint) after this step")
    return p.parse_args(argv)


# -- 1 and 2: vocabulary and token stream --------------------------------------------------------------------------------

def corpus_files(folder: str) -> list[Path]:
    files = sorted(Path(folder).glob("*.txt"))
    if not files:
        sys.exit(f"no .txt files in {folder!r}")
    return files


TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json")


def build_vocabulary(args) -> FlaubertTokenizer:
    folder = Path(args.work) / "tokenizer"
    if args.init_from and not (folder / "merges.txt").is_file():
        folder.mkdir(parents=True, exist_ok=True)  # continued pretraining keeps the model's own vocabulary
        for name in TOKENIZER_FILES:
            (folder / name).write_bytes((Path(args.init_from) / name).read_bytes())
    if not (folder / "merges.txt").is_file():
        started = time.time()
        train_bpe_files(corpus_files(args.corpus), folder, args.vocab_size, lowercase=True,
                        model_max_length=args.long_seq_len, progress=True)
        print(f"vocabulary: {args.vocab_size} symbols in {time.time() - started:.0f} s", file=sys.stderr)
    return FlaubertTokenizer.from_pretrained(folder)


def token_stream(tokenizer: FlaubertTokenizer, paragraphs) -> np.ndarray:
    """All paragraphs' token ids end to end, ``</s>`` after each: ``[n_tokens]`` int32."""
    ids = []
    for text in paragraphs:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        ids.append(EOS)
    return np.asarray(ids, dtype=np.int32)


def sequences_of(stream: np.ndarray, seq_len: int) -> np.ndarray:
    """Cut the stream into ``<s> chunk </s>`` rows: ``[n_tokens] -> [n_sequences, seq_len]``."""
    body = seq_len - 2
    n = len(stream) // body
    rows = np.empty((n, seq_len), dtype=np.int32)
    rows[:, 0], rows[:, -1] = BOS, EOS
    rows[:, 1:-1] = stream[: n * body].reshape(n, body)
    return rows


def load_stream(args, tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """The training token stream (cached in --work) and 64 fixed held-out rows of --long-seq-len tokens, the
    model's every position (rows of --seq-len would never check the positions past it)."""
    cache = Path(args.work) / f"train_stream_{args.vocab_size}.npy"
    if not cache.is_file():
        started = time.time()
        np.save(cache, token_stream(tokenizer, read_paragraphs(corpus_files(args.corpus))))
        print(f"token stream in {time.time() - started:.0f} s", file=sys.stderr)
    heldout = token_stream(tokenizer, list(read_paragraphs([args.heldout]))[:800])
    return np.load(cache), sequences_of(heldout, args.long_seq_len)[:64]


def phase_of(step: int, args) -> tuple[int, int, int]:
    """``(seq_len, batch_size, step within the phase)``: short sequences first, then the long ones, with as many
    tokens per step (BERT's recipe: the positions past --seq-len are learned in the last phase only)."""
    long_start = int(args.steps * (1 - args.long_fraction))
    if step < long_start:
        return args.seq_len, args.batch_size, step
    return args.long_seq_len, args.batch_size * args.seq_len // args.long_seq_len, step - long_start


# -- 3: masked-language modelling ---------------------------------------------------------------------------------------

def batch_for_step(rows: np.ndarray, step: int, batch_size: int, seed: int) -> np.ndarray:
    """The rows of step ``step``: epoch ``e`` visits the rows in a permutation seeded by ``(seed, e)``."""
    per_epoch = len(rows) // batch_size
    epoch, index = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(len(rows))
    return rows[order[index * batch_size:(index + 1) * batch_size]]


def mask_tokens(rows: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hide 15 % of the ordinary tokens: ``(inputs, positions [n, 2], targets [n])``.

    Every chosen token becomes the mask token (no 80/10/10 split: Wettig et al., 2023, find it unnecessary, and
    fill-mask always shows the model a mask).
    """
    ordinary = rows >= N_SPECIAL
    chosen = ordinary & (rng.random(rows.shape) < MASK_RATE)
    inputs = rows.copy()
    inputs[chosen] = MASK
    return inputs, np.argwhere(chosen), rows[chosen]


def masked_logits(model, inputs: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The encoder on every position, the vocabulary projection only where a token was hidden: ``[n, vocab]``."""
    hidden = model.transformer(input_ids=inputs)[0]  # [batch, seq, dim]
    return model.pred_layer.proj(hidden[positions[:, 0], positions[:, 1]])  # [n, dim] -> [n, vocab]


def learning_rate(step: int, args) -> float:
    """Linear warm-up to ``--lr`` over ``--warmup`` steps, then linear decay to 0 at ``--steps``."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    return args.lr * max(0.0, (args.steps - step) / max(1, args.steps - args.warmup))


@torch.no_grad()
def heldout_accuracy(model, rows: np.ndarray, seed: int, near: int) -> tuple[float, float, float]:
    """Top-1 accuracy on the held-out rows, with masks fixed once for all evaluations: over all masked positions,
    over those before ``near`` and over those from ``near`` on (the positions only the long phase teaches)."""
    model.eval()
    inputs, positions, targets = mask_tokens(rows, np.random.default_rng([seed, 10**9]))
    logits = masked_logits(model, torch.from_numpy(inputs).long(), torch.from_numpy(positions))
    model.train()
    right = logits.argmax(-1).numpy() == targets
    far = positions[:, 1] >= near
    return float(right.mean()), float(right[~far].mean()), float(right[far].mean())


def new_model(args, vocab_size: int):
    if args.init_from:
        return transformers.FlaubertWithLMHeadModel.from_pretrained(args.init_from, dtype=torch.float32)
    config = transformers.FlaubertConfig(
        vocab_size=vocab_size, emb_dim=args.dim, n_layers=args.layers, n_heads=args.heads, pre_norm=True,
        max_position_embeddings=args.long_seq_len, n_langs=1, use_lang_emb=False, dropout=0.0,
        attention_dropout=0.0, embed_init_std=args.dim ** -0.5, init_std=0.02, layer_norm_eps=1e-12,
        architectures=["FlaubertWithLMHeadModel"], pad_index=PAD, mask_index=MASK, mask_token_id=MASK,
    )
    torch.manual_seed(args.seed)
    return transformers.FlaubertWithLMHeadModel(config)


def new_optimizer(model, args):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]  # biases and LayerNorms
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98), eps=1e-6)


def save_checkpoint(path: Path, model, optimizer, step: int, elapsed: float) -> None:
    temporary = path.with_suffix(".part")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "elapsed": elapsed}, temporary)
    os.replace(temporary, path)


LOG_COLUMNS = "step,minutes,tokens,train_loss,heldout_top1,heldout_top1_near,heldout_top1_far"


def earlier_training(args) -> tuple[str, int, float, int]:
    """With --init-from, the log of the model's own training, so that the new log continues it: ``(its rows in
    LOG_COLUMNS, last step, minutes, tokens)``; without, nothing."""
    log = Path(args.init_from or "") / "training_log.csv"
    if not args.init_from or not log.is_file():
        return "", 0, 0.0, 0
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    lines = "".join(",".join(row.get(column) or "" for column in LOG_COLUMNS.split(",")) + "\n" for row in rows)
    return lines, int(rows[-1]["step"]), float(rows[-1]["minutes"]), int(rows[-1]["tokens"])


def train(args, model, optimizer, stream, heldout_rows, start_step: int, elapsed: float) -> None:
    log_path = Path(args.work) / "training_log.csv"
    earlier_rows, step0, minutes0, tokens0 = earlier_training(args)
    if start_step == 0:
        log_path.write_text(LOG_COLUMNS + "\n" + earlier_rows)
    checkpoint = Path(args.work) / "checkpoint.pt"
    last_checkpoint = time.time()
    started = time.time() - elapsed
    run_started = time.time()
    losses = []
    last_step = args.steps if args.stop_after is None else min(args.steps, args.stop_after)
    rows_of = {length: sequences_of(stream, length) for length in (args.seq_len, args.long_seq_len)}
    tokens = 0
    for step in range(start_step, last_step):
        seq_len, batch_size, phase_step = phase_of(step, args)
        rows = batch_for_step(rows_of[seq_len], phase_step, batch_size, args.seed)
        inputs, positions, targets = mask_tokens(rows, np.random.default_rng([args.seed, step]))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):  # weights stay float32
            logits = masked_logits(model, torch.from_numpy(inputs).long(), torch.from_numpy(positions))
        loss = torch.nn.functional.cross_entropy(logits.float(), torch.from_numpy(targets).long())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        losses.append(loss.item())
        tokens += rows.size
        done = step + 1
        if done % args.log_every == 0 or done == last_step:
            minutes = (time.time() - started) / 60
            top1 = ("", "", "")
            if done % args.eval_every == 0:
                top1 = tuple(f"{a:.4f}" for a in heldout_accuracy(model, heldout_rows, args.seed, args.seq_len))
            with open(log_path, "a") as f:
                f.write(f"{step0 + done},{minutes0 + minutes:.2f},{tokens0 + done * args.batch_size * args.seq_len},"
                        f"{np.mean(losses):.4f},{','.join(top1)}\n")
            print(f"step {done}/{args.steps}  {minutes:6.1f} min  loss {np.mean(losses):.3f}  "
                  f"{tokens / (time.time() - run_started):,.0f} tokens/s  held-out top-1 (all, near, far) {top1}",
                  file=sys.stderr, flush=True)
            losses = []
        if time.time() - last_checkpoint > args.checkpoint_minutes * 60 or done == last_step:
            save_checkpoint(checkpoint, model, optimizer, done, time.time() - started)
            last_checkpoint = time.time()


# -- 4: export ----------------------------------------------------------------------------------------------------------

def export(args, model, tokenizer) -> None:
    """config.json + float16 model.safetensors + tokenizer files + the training log, into --out."""
    from safetensors.torch import load_file, save_file

    out = Path(args.out)
    staging = out.with_name(out.name + ".export")
    model.save_pretrained(staging, safe_serialization=True)
    weights = load_file(staging / "model.safetensors")
    save_file({name: tensor.half() if tensor.is_floating_point() else tensor for name, tensor in weights.items()},
              staging / "model.safetensors", metadata={"format": "pt"})
    (staging / "generation_config.json").unlink(missing_ok=True)  # an encoder generates nothing
    config = json.loads((staging / "config.json").read_text())
    config["torch_dtype"] = config["dtype"] = "float32"  # compute in float32 whatever the storage dtype
    (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer.model_max_length = args.long_seq_len  # the positions the model has learned
    tokenizer.save_pretrained(staging)
    log = Path(args.work) / "training_log.csv"
    if log.is_file():
        (staging / "training_log.csv").write_text(log.read_text())
    if (out / "README.md").is_file():
        (staging / "README.md").write_text((out / "README.md").read_text())
    os.makedirs(out, exist_ok=True)
    for item in staging.iterdir():
        os.replace(item, out / item.name)
    staging.rmdir()
    print(f"exported to {out}", file=sys.stderr)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    tokenizer = build_vocabulary(args)
    model = new_model(args, len(tokenizer))
    optimizer = new_optimizer(model, args)
    start_step, elapsed = 0, 0.0
    checkpoint = Path(args.work) / "checkpoint.pt"
    if args.resume or args.export_only:
        if not checkpoint.is_file():
            sys.exit(f"no checkpoint to resume from in {args.work}")
        state = torch.load(checkpoint, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_step, elapsed = state["step"], state["elapsed"]
        print(f"resuming at step {start_step} ({elapsed / 60:.1f} min done)", file=sys.stderr)
    if not args.export_only:
        (Path(args.work) / "args.json").write_text(json.dumps(vars(args), indent=2))
        stream, heldout_rows = load_stream(args, tokenizer)
        print(f"{len(stream):,} training tokens; {args.steps * args.batch_size * args.seq_len / len(stream):.1f} "
              f"epochs", file=sys.stderr)
        model.train()
        train(args, model, optimizer, stream, heldout_rows, start_step, elapsed)
    model.eval()
    export(args, model, tokenizer)


if __name__ == "__main__":
    main()
