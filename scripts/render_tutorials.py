"""Run every lesson in tutorials/ and write what each ```python block prints into the ```output block below it.

    python scripts/render_tutorials.py                 # every lesson
    python scripts/render_tutorials.py 03 tutorials/05_encoder_and_parity.md   # some of them
    python scripts/render_tutorials.py --check         # change nothing; exit 1 if a shown output is out of date

A lesson's ```python blocks run in order, in one namespace, from the repository root (as tests/test_tutorials.py
runs them). A block that prints gets an ```output block right after it holding exactly what it printed (trailing
spaces and blank lines at the end dropped); a block that prints nothing gets none. tests/test_tutorials.py runs the
same code and fails on any difference, so a number on the page is a number the code computes today.

A block whose output depends on the machine (a file you may or may not have downloaded) is opened with
```python varies: its output block is still written, and shown, but not compared.
"""
from __future__ import annotations

import contextlib
import difflib
import io
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TUTORIALS = REPO / "tutorials"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
RENDER_COMMAND = "python scripts/render_tutorials.py"


@dataclass
class Block:
    """One ```python block, and the ```output block that follows it, if any (spans index the lesson's text)."""
    number: int  # 1, 2, ... among the lesson's python blocks
    code: str
    end: int  # just after the python block's closing fence
    varies: bool
    shown: str | None  # the output block's text, None when there is none
    shown_span: tuple[int, int] | None  # from the end of the python block to the end of the output block


def parse(text: str) -> list[Block]:
    fences = list(FENCE.finditer(text))
    blocks = []
    for i, fence in enumerate(fences):
        info = fence.group(1).split()
        if not info or info[0] != "python":
            continue
        following = fences[i + 1] if i + 1 < len(fences) else None
        shown = span = None
        if following is not None and following.group(1).strip() == "output" \
                and text[fence.end():following.start()].strip() == "":
            shown, span = following.group(2), (fence.end(), following.end())
        blocks.append(Block(len(blocks) + 1, fence.group(2), fence.end(), "varies" in info[1:], shown, span))
    return blocks


def normalise(output: str) -> str:
    """What an output block holds: trailing spaces of each line and blank lines at the end removed."""
    lines = [line.rstrip() for line in output.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n" if lines else ""


def run_lesson(path: Path, blocks: list[Block] | None = None) -> list[str]:
    """Run a lesson's python blocks in one namespace from the repository root -> what each one printed.

    An exception propagates with the lesson's file name and block number in its traceback.
    """
    blocks = parse(path.read_text(encoding="utf-8")) if blocks is None else blocks
    namespace = {"__name__": "__tutorial__"}
    printed = []
    previous = os.getcwd()
    os.chdir(REPO)
    try:
        import numpy as np

        with np.printoptions():  # a lesson's set_printoptions must not leak into the next lesson
            for block in blocks:
                buffer = io.StringIO()
                with contextlib.redirect_stdout(buffer):
                    exec(compile(block.code, f"{path.name}, block {block.number}", "exec"), namespace)
                printed.append(normalise(buffer.getvalue()))
    finally:
        os.chdir(previous)
    return printed


def differences(path: Path, blocks: list[Block], printed: list[str]) -> list[str]:
    """A readable diff per block whose shown output is not what it printed (empty when the page is true)."""
    problems = []
    for block, out in zip(blocks, printed):
        if block.varies:
            continue
        shown = normalise(block.shown) if block.shown is not None else ""
        if shown == out:
            continue
        where = f"{path.name}, python block {block.number} (line {block_line(path, block)})"
        if block.shown is None:
            head = f"{where} prints output but has no ```output block after it"
        elif not out:
            head = f"{where} prints nothing but is followed by an ```output block"
        else:
            head = f"{where}: the ```output block is not what the code prints"
        diff = difflib.unified_diff(shown.splitlines(), out.splitlines(), "shown in the lesson", "printed now",
                                    lineterm="", n=1)
        problems.append(head + "\n" + "\n".join(diff))
    return problems


def block_line(path: Path, block: Block) -> int:
    return path.read_text(encoding="utf-8")[:block.end].count("\n") + 1


def rendered(text: str, blocks: list[Block], printed: list[str]) -> str:
    """The lesson's text with every output block set to what its python block printed."""
    pieces, position = [], 0
    for block, out in zip(blocks, printed):
        pieces.append(text[position:block.end])
        position = block.shown_span[1] if block.shown_span else block.end
        if out:
            pieces.append(f"\n\n```output\n{out}```")
    pieces.append(text[position:])
    return "".join(pieces)


def lessons(selection: list[str]) -> list[Path]:
    every = sorted(TUTORIALS.glob("[0-9][0-9]_*.md"))
    if not selection:
        return every
    chosen = []
    for item in selection:
        matches = [p for p in every if p.name.startswith(item) or p == (Path.cwd() / item).resolve()
                   or p.name == Path(item).name]
        if not matches:
            raise SystemExit(f"no lesson matches {item!r}")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def main(argv: list[str]) -> int:
    check = "--check" in argv
    failed = False
    for path in lessons([a for a in argv if a != "--check"]):
        text = path.read_text(encoding="utf-8")
        blocks = parse(text)
        printed = run_lesson(path, blocks)
        problems = differences(path, blocks, printed)
        new = rendered(text, blocks, printed)
        if check:
            for problem in problems:
                print(problem, end="\n\n")
            failed |= bool(problems)
            print(f"{path.name}: {'out of date' if problems else 'up to date'}", file=sys.stderr)
        elif new != text:
            path.write_text(new, encoding="utf-8")
            print(f"{path.name}: outputs updated", file=sys.stderr)
        else:
            print(f"{path.name}: unchanged", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main(sys.argv[1:]))
