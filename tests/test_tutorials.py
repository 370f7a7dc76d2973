"""Every lesson in tutorials/ is a test: its ```python blocks run in order, in one namespace, from the repo root.

So a lesson can never drift from the code it teaches. They must run on a fresh machine (no torch, no network),
which the CI checks too; ```bash blocks are shown, not run. Relative links must point at files that exist.
"""
import re

import pytest

from conftest import REPO

TUTORIALS = sorted((REPO / "tutorials").glob("[0-9][0-9]_*.md"))
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
RELATIVE_LINK = re.compile(r"\]\((?!https?://|#)([^)#\s]+)")


def python_blocks(path):
    return PYTHON_BLOCK.findall(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda path: path.stem)
def test_tutorial_runs(path, monkeypatch):
    monkeypatch.chdir(REPO)
    blocks = python_blocks(path)
    assert blocks, f"{path.name} has no ```python block"
    namespace = {"__name__": "__tutorial__"}
    for i, block in enumerate(blocks, 1):
        # the file name and block number show up in the traceback of a failing lesson
        exec(compile(block, f"{path.name}, block {i}", "exec"), namespace)


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda path: path.stem)
def test_tutorial_links_exist(path):
    links = RELATIVE_LINK.findall(path.read_text(encoding="utf-8"))
    assert any("minflaubert/" in link for link in links), f"{path.name} links to no code it explains"
    for link in links:
        assert (path.parent / link).exists(), f"{path.name}: broken link {link}"


def test_lessons_are_numbered_in_order():
    numbers = [int(path.name[:2]) for path in TUTORIALS]
    assert numbers == list(range(1, len(numbers) + 1))
