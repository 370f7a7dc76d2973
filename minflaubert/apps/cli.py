"""The ``minflaubert`` command line: the pipelines and the checkpoint tools, one subcommand each.

    minflaubert fill-mask "Le chat dort sur le <special1>."
    minflaubert embed texts.txt -o vectors.npy
    minflaubert download flaubert_base_cased

Conventions, so the commands compose in a shell: results go to stdout as JSON lines (one JSON value per input,
in input order), progress bars and messages to stderr, and an error is one line on stderr with a non-zero exit
(1 for a failure, 2 for a wrong command line, 130 after Ctrl-C). Texts come from the arguments, or else from stdin,
one per line: a line ends at ``\n`` (or ``\r\n``) and nowhere else, and invalid UTF-8 is an error naming the line
(``lines.read_lines``). Output is UTF-8 whatever the locale. When the reader of stdout goes away (``| head -1``)
the command stops quietly with status 141, as coreutils do. ``--quiet`` silences progress bars and warnings.
Without ``--model``, ``fill-mask``, ``embed`` and ``info`` use ``weights/flaubert_tiny``, the small FlauBERT shipped
with minflaubert (offline); ``classify``, ``ner`` and ``qa`` need a fine-tuned checkpoint, so ``--model`` is required.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from .. import __version__
from ..checkpoints import hub

EXAMPLES = {
    "fill-mask": 'minflaubert fill-mask "Le chat dort sur le <special1>." --top-k 3',
    "embed": "minflaubert embed novels/*.txt -o vectors/ --pooling mean   (or -o vectors.npy for a small job)",
    "classify": 'minflaubert classify "Quel film magnifique !" --model weights/my-classifier',
    "ner": 'minflaubert ner "Marie habite à Lyon." --model weights/my-ner --aggregation simple',
    "qa": 'minflaubert qa --question "Où habite Marie ?" --context "Marie habite à Lyon." --model weights/my-qa',
    "download": "minflaubert download flaubert_base_cased",
    "convert": "minflaubert convert weights/flaubert_base_cased",
    "info": "minflaubert info weights/flaubert_base_cased",
    "train-bpe": "minflaubert train-bpe novels/*.txt -o my_tokenizer --vocab-size 16000",
    "explore": 'minflaubert explore "Elle ouvrit la <special1> ." -o page.html',
}
# What each checkpoint class was trained for: the tasks whose head weights it actually has.
TASKS_OF = {
    "FlaubertModel": ["feature-extraction"],
    "FlaubertWithLMHeadModel": ["fill-mask", "feature-extraction"],
    "FlaubertForSequenceClassification": ["text-classification", "feature-extraction"],
    "FlaubertForTokenClassification": ["token-classification", "feature-extraction"],
    "FlaubertForQuestionAnsweringSimple": ["question-answering", "feature-extraction"],
    "FlaubertForQuestionAnswering": ["question-answering", "feature-extraction"],
    "FlaubertForMultipleChoice": ["feature-extraction"],
}
LABELLED = {"FlaubertForSequenceClassification", "FlaubertForTokenClassification"}  # their id2label means something


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: the process's arguments) -> the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        if args.quiet:
            warnings.simplefilter("ignore")
        warnings.showwarning = one_line_warning(args.command)
        try:
            args.run(args)
        except BrokenPipeError:  # subtle: before OSError, of which it is a kind
            return stop_writing()
        except KeyboardInterrupt:
            print(f"minflaubert {args.command}: interrupted", file=sys.stderr)
            return 130
        except (OSError, ValueError, TypeError, ImportError) as error:  # the library's errors already say what to do
            print(f"minflaubert {args.command}: error: {error}", file=sys.stderr)
            return 1
    return 0


def one_line_warning(command: str):
    """Warnings as one line on stderr, ``minflaubert COMMAND: warning: ...``, instead of Python's two (file, line
    and source code mean nothing to a shell user)."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"minflaubert {command}: warning: {str(message).splitlines()[0]}", file=sys.stderr)
    return show


def stop_writing() -> int:
    """stdout's reader is gone (``| head -1``): stop quietly with 141 (128 + SIGPIPE), as coreutils do.

    subtle: Python flushes stdout once more when it exits, which would fail again and print a traceback; pointing
    stdout at /dev/null gives that last flush somewhere to go.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


def build_parser() -> argparse.ArgumentParser:
    """The ``minflaubert`` parser: one subcommand per pipeline and per tool, listed by ``--help`` in this order."""
    parser = argparse.ArgumentParser(prog="minflaubert",
                                     description="FlauBERT on a laptop: pipelines and checkpoint tools.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Run 'minflaubert COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_any_model_commands(commands)
    add_fine_tuned_commands(commands)
    add_tool_commands(commands)
    add_explore_command(commands)
    return parser


def add_command(commands, name, run, help, model=True, texts=True, model_required=False):
    """A subcommand with the options all share (``--quiet``), and the texts and ``--model`` where it takes them."""
    sub = commands.add_parser(name, help=help, description=help, epilog=f"example:\n  {EXAMPLES[name]}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.set_defaults(run=run)
    sub.add_argument("--quiet", action="store_true", help="no progress bars, no warnings")
    if texts:
        sub.add_argument("texts", nargs="*", metavar="TEXT", help="texts to process (default: stdin, one per line)")
    if model:
        sub.add_argument("--model", required=model_required,
                         help="checkpoint folder or hub repository id" + (
                             " (fine-tuned for this task)" if model_required
                             else " (default: weights/flaubert_tiny)"))
        sub.add_argument("--batch-size", type=int, default=8, help="texts per forward pass (default: 8)")
    return sub


def add_any_model_commands(commands) -> None:
    """fill-mask and embed: any checkpoint serves (the shipped flaubert_tiny by default)."""
    sub = add_command(commands, "fill-mask", run_fill_mask, "Propose words for the mask token <special1>.")
    sub.add_argument("--top-k", type=int, default=5, help="proposals per mask (default: 5)")
    sub.add_argument("--targets", nargs="+", metavar="WORD", help="rank only these words")
    allow_random_head(sub)

    sub = add_command(commands, "embed", run_embed, "One vector per line of text files: Parquet shards in a folder "
                      "(resumable, optionally on a Dask cluster), or one .npy array for a small job.", texts=False)
    sub.add_argument("inputs", nargs="*", metavar="FILE",
                     help="UTF-8 text files, one text per line, .gz decompressed ('-' or none: stdin)")
    sub.add_argument("-o", "--output", required=True,
                     help="a folder for Parquet shards and _manifest.json, or a file name ending in .npy")
    sub.add_argument("--pooling", choices=["mean", "first", "max"], default="mean",
                     help="mean of the token vectors, the first token's, or each feature's maximum (default: mean)")
    sub.add_argument("--normalize", action="store_true", help="scale every vector to length 1")
    sub.add_argument("--shard-lines", type=int, help="lines per Parquet shard (default: 10000)")
    sub.add_argument("--keep-text", action="store_true", help="store each line's text in the shards too")
    sub.add_argument("--dask", metavar="CLUSTER",
                     help="run the shards on Dask: local:N (N worker processes here) or tcp://HOST:PORT (a scheduler)")
    sub.add_argument("--overwrite", action="store_true",
                     help="start over in a folder that holds embeddings made with other settings, or replace an "
                          "existing .npy file")


def add_fine_tuned_commands(commands) -> None:
    """classify, ner and qa: they need a checkpoint fine-tuned for the task (--model is required)."""
    sub = add_command(commands, "classify", run_classify, "Label texts with a sequence-classification checkpoint.",
                      model_required=True)
    allow_random_head(sub)
    sub.add_argument("--top-k", type=int, default=1, help="labels per text (default: 1; 0 = all)")

    sub = add_command(commands, "ner", run_ner,
                      "Tag entities (character spans) with a token-classification checkpoint.", model_required=True)
    allow_random_head(sub)
    sub.add_argument("--aggregation", default="simple",
                     choices=["none", "simple", "first", "average", "max"],
                     help="how pieces and words are grouped into entities (default: simple)")

    sub = add_command(commands, "qa", run_qa, "Find the answer to a question in a context.", texts=False,
                      model_required=True)
    allow_random_head(sub)
    sub.add_argument("--question", required=True)
    context = sub.add_mutually_exclusive_group(required=True)
    context.add_argument("--context", help="the text to answer from")
    context.add_argument("--context-file", help="a UTF-8 file holding the context")
    sub.add_argument("--top-k", type=int, default=1, help="answers to give (default: 1)")
    sub.add_argument("--doc-stride", type=int, help="overlap in tokens between windows of a long context")


def add_tool_commands(commands) -> None:
    """download, convert, info and train-bpe: the tools for checkpoints and tokenizers."""
    sub = add_command(commands, "download", run_download,
                      "Download a hub repository's model and tokenizer into huggingface_hub's cache (shared with "
                      "transformers; $HF_HOME moves it, $HF_ENDPOINT picks a mirror).", model=False, texts=False)
    sub.add_argument("name", help=f"a repository id (owner/name) or a published short name: "
                                  f"{', '.join(sorted(hub.registry()))}")
    sub.add_argument("--revision", help="branch, tag or commit hash (default: main)")
    sub.add_argument("--cache-dir", help="another cache folder (default: huggingface_hub's, ~/.cache/huggingface/hub)")

    sub = add_command(commands, "convert", run_convert,
                      "Convert a folder's pytorch_model.bin to model.safetensors (no torch).", model=False, texts=False)
    sub.add_argument("folder", help="checkpoint folder holding pytorch_model.bin")
    sub.add_argument("--output", help="folder to write into (default: the same folder)")
    sub.add_argument("--overwrite", action="store_true", help="replace an existing model.safetensors")

    sub = add_command(commands, "info", run_info, "Describe a checkpoint: architecture, size, heads, the tasks it "
                      "serves.", model=False, texts=False)
    sub.add_argument("model", nargs="?", default=None,
                     help="checkpoint folder or hub repository id (default: weights/flaubert_tiny)")

    sub = add_command(commands, "train-bpe", run_train_bpe, "Learn a FlauBERT BPE vocabulary from text files (one "
                      "paragraph a line) and write vocab.json, merges.txt and tokenizer_config.json.", model=False,
                      texts=False)
    sub.add_argument("inputs", nargs="+", metavar="FILE", help="UTF-8 text files ('-': stdin; .gz decompressed)")
    sub.add_argument("-o", "--output", required=True, help="the folder to write the tokenizer files into")
    sub.add_argument("--vocab-size", type=int, required=True,
                     help="symbols in the vocabulary, the 14 special tokens and the text's characters included")
    sub.add_argument("--cased", action="store_true", help="keep case and accents (default: lowercased, as "
                                                          "flaubert_base_uncased)")
    sub.add_argument("--min-frequency", type=int, default=2, help="stop when the best pair is rarer (default: 2)")
    sub.add_argument("--model-max-length", type=int, default=512, help="written to tokenizer_config.json")


def add_explore_command(commands) -> None:
    """explore: one offline HTML page of a text's tokens, attention, guesses by layer and residual stream."""
    sub = add_command(commands, "explore", run_explore, "Write one self-contained HTML page (opens offline) showing a "
                      "text's tokens, every attention map, each layer's guesses for <special1> and the residual "
                      "stream.", model=False, texts=False)
    sub.add_argument("text", help="the text to look into (put <special1> where a word is missing)")
    sub.add_argument("-o", "--output", default="explore.html", help="the page to write (default: explore.html)")
    sub.add_argument("--model", help="checkpoint folder or hub repository id (default: weights/flaubert_tiny)")
    sub.add_argument("--top-k", type=int, default=5, help="guesses shown per layer for each mask (default: 5)")


def allow_random_head(sub) -> None:
    """Add ``--allow-random-head`` to a command that runs a task head."""
    sub.add_argument("--allow-random-head", action="store_true",
                     help="run even when the checkpoint has no weights for this task's head (random answers: for "
                          "tests and tutorials)")


# ---------------------------------------------------------------------------------------------- helpers
def emit(value) -> None:
    """One JSON line on stdout, in UTF-8 whatever the locale's encoding (JSON text is UTF-8: RFC 8259)."""
    line = json.dumps(value, ensure_ascii=False, default=_jsonable) + "\n"
    sys.stdout.flush()  # (anything printed before goes first)
    sys.stdout.buffer.write(line.encode("utf-8"))
    sys.stdout.buffer.flush()


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def texts_of(args) -> list[str]:
    """The command's texts: its arguments, else the lines of stdin (``lines.read_lines``: the embed command's rule).
    """
    from .lines import read_lines

    texts = [checked_argument(number, text) for number, text in enumerate(args.texts, start=1)] \
        or list(read_lines("-"))
    if not texts:
        raise ValueError("no text given: pass texts as arguments or one per line on stdin")
    return texts


def checked_argument(number: int, text: str) -> str:
    """A text given as an argument. subtle: Python turns bytes of argv that are not UTF-8 into lone surrogates
    (U+DC80-U+DCFF), which no UTF-8 output can hold: refused here, naming the argument."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"text argument {number} is not valid UTF-8") from None
    return text


def read_utf8(path: str) -> str:
    """A whole UTF-8 file; invalid UTF-8 is an error naming the file and the byte (never replaced, never skipped)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        bad = error.object[error.start:error.start + 1]
        raise ValueError(f"{path} is not valid UTF-8 (byte {error.start + 1} is {bad!r})") from None


def make_pipeline(task: str, args, **options):
    """The task's pipeline on the command's --model and --batch-size (with a progress bar on a terminal)."""
    from .pipelines import pipeline  # imported here so that download/convert/info start fast

    if task != "feature-extraction":
        options["allow_random_head"] = args.allow_random_head
        # (the pipeline says in one line what a missing head means; the loader's long warning would repeat it)
        warnings.filterwarnings("ignore", message="Some weights of .* newly initialized")
    progress = not args.quiet and sys.stderr.isatty()  # (a bar is for a person watching, not for a log file)
    return pipeline(task, model=args.model, batch_size=args.batch_size, progress=progress, **options)


def run_each(task: str, args, **options) -> None:
    """Run a pipeline over the command's texts and write one JSON line per text."""
    results = make_pipeline(task, args, **options)(texts_of(args))
    for result in results:
        emit(result)


# ---------------------------------------------------------------------------------------------- commands
def run_fill_mask(args) -> None:
    """``minflaubert fill-mask``: the proposals for each mask, one JSON line per text."""
    run_each("fill-mask", args, top_k=args.top_k, targets=args.targets)


def run_classify(args) -> None:
    """``minflaubert classify``: the labels of each text."""
    run_each("text-classification", args, top_k=args.top_k or None)


def run_ner(args) -> None:
    """``minflaubert ner``: the entities of each text, with their character spans."""
    run_each("token-classification", args, aggregation_strategy=args.aggregation)


def run_qa(args) -> None:
    """``minflaubert qa``: the answer to --question in --context (or --context-file)."""
    context = args.context if args.context is not None else read_utf8(args.context_file)
    answer = make_pipeline("question-answering", args, top_k=args.top_k, doc_stride=args.doc_stride)
    emit(answer(question=args.question, context=context))


def run_embed(args) -> None:
    """``minflaubert embed``: Parquet shards in a folder, or one .npy file for a small job."""
    from . import corpus

    common = dict(model=args.model, pooling=args.pooling, normalize=args.normalize, batch_size=args.batch_size,
                  progress=not args.quiet)
    if not args.output.endswith(".npy"):
        emit(corpus.embed_corpus(args.inputs, args.output, shard_lines=args.shard_lines, keep_text=args.keep_text,
                                 dask=args.dask, overwrite=args.overwrite, **common))
        return
    folder_only = [option for option, given in [("--shard-lines", args.shard_lines is not None),
                                                ("--keep-text", args.keep_text), ("--dask", args.dask)] if given]
    if folder_only:
        raise ValueError(f"{', '.join(folder_only)}: only for Parquet shards; give -o a folder instead of a .npy file")
    emit(corpus.embed_to_npy(args.inputs, args.output, overwrite=args.overwrite, **common))


def run_download(args) -> None:
    """``minflaubert download``: a hub repository into huggingface_hub's cache."""
    folder = hub.download(args.name, revision=args.revision, cache_dir=args.cache_dir)
    emit({"name": args.name, "repo_id": hub.repo_id_of(args.name), "folder": str(folder)})


def run_convert(args) -> None:
    """``minflaubert convert``: pytorch_model.bin -> model.safetensors."""
    from ..checkpoints.weights import convert_checkpoint

    target = convert_checkpoint(args.folder, args.output, overwrite=args.overwrite)
    emit({"output": str(target), "bytes": target.stat().st_size})


def run_info(args) -> None:
    """``minflaubert info``: what a checkpoint holds and which tasks it serves, as one JSON object."""
    from ..models.config import FlaubertConfig
    from ..checkpoints.weights import load_state_dict

    folder = hub.resolve_name(args.model) if args.model is not None else hub.shipped_model()
    config = FlaubertConfig.from_pretrained(folder)
    state = load_state_dict(folder)  # memory-mapped: only the headers are read
    heads = sorted({name.split(".")[0] for name in state if not name.startswith("transformer.")}
                   - {"embeddings", "position_embeddings", "lang_embeddings", "layer_norm_emb", "attentions",
                      "layer_norm1", "layer_norm2", "ffns", "position_ids"})
    architectures = config.architectures or []
    files = {path.name: path.stat().st_size for path in sorted(folder.iterdir()) if path.is_file()}
    emit({
        "folder": str(folder),
        "architectures": architectures,
        "tasks": sorted({task for name in architectures for task in TASKS_OF.get(name, [])}),
        "head_weights": heads,
        "emb_dim": config.emb_dim, "n_layers": config.n_layers, "n_heads": config.n_heads,
        "vocab_size": config.vocab_size, "pre_norm": config.pre_norm, "causal": config.causal,
        "labels": config.id2label if set(architectures) & LABELLED else None,
        "parameters": int(sum(array.size for name, array in state.items() if not name.endswith("position_ids"))),
        "files": files,
        "bytes": sum(files.values()),
    })


def run_explore(args) -> None:
    """``minflaubert explore``: write the page and print where it is."""
    from .explore import explore

    page = explore(checked_argument(1, args.text), model=args.model, top_k=args.top_k).save(args.output)
    emit({"output": str(page), "bytes": page.stat().st_size})


def run_train_bpe(args) -> None:
    """``minflaubert train-bpe``: learn a BPE vocabulary and write the tokenizer's files, all or nothing."""
    from ..checkpoints.atomic import atomic_folder
    from ..tokenization.bpe_train import train_bpe
    from .lines import read_lines
    from ..tokenization.files import write_tokenizer_files

    for option in ("vocab_size", "min_frequency", "model_max_length"):
        if getattr(args, option) < 1:
            raise ValueError(f"--{option.replace('_', '-')} must be a positive integer, got {getattr(args, option)}")
    paragraphs = (line.strip() for source in args.inputs for line in read_lines(source))
    vocab, merges = train_bpe((text for text in paragraphs if text), args.vocab_size, lowercase=not args.cased,
                              min_frequency=args.min_frequency, progress=not args.quiet)
    with atomic_folder(args.output) as staging:  # a run cut short leaves no half-written tokenizer
        write_tokenizer_files(staging, vocab, merges, do_lowercase=not args.cased,
                              model_max_length=args.model_max_length, clean_up_tokenization_spaces=True)
    emit({"output": args.output, "vocab_size": len(vocab), "merges": len(merges)})
