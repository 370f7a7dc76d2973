"""Every lesson in tutorials/ is a test: its ```python blocks run in order, in one namespace, from the repo root, and
what each block prints must be exactly the ```output block shown after it.

So a lesson can never drift from the code it teaches, and no number on its page can be stale: change one digit of a
shown output and the lesson fails, with a diff naming the lesson and the block. `python scripts/render_tutorials.py`
rewrites the output blocks after a deliberate change. Lessons must run on a fresh machine (no torch, no network, no
matplotlib), which the CI checks too; ```bash blocks are shown, not run. Relative links and figures must point at
files that exist, each lesson ends with exercises whose solutions (tutorials/solutions/) run here too, and the figure
script (scripts/make_figures.py) still runs when matplotlib is installed.
"""
import contextlib
import importlib.util
import io
import os
import re
import runpy
import subprocess
import sys

import pytest

from conftest import REPO

TUTORIALS = sorted((REPO / "tutorials").glob("[0-9][0-9]_*.md"))
SOLUTIONS = sorted((REPO / "tutorials" / "solutions").glob("*.py"))
RELATIVE_LINK = re.compile(r"\]\((?!https?://|#)([^)#\s]+)")
FIGURE = re.compile(r"!\[[^\]]*\]\((figures/[^)\s]+)\)")


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


render = load_script("render_tutorials")


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda path: path.stem)
def test_tutorial_runs_and_shows_what_it_prints(path):
    blocks = render.parse(path.read_text(encoding="utf-8"))
    assert blocks, f"{path.name} has no ```python block"
    printed = render.run_lesson(path, blocks)
    problems = render.differences(path, blocks, printed)
    assert not problems, ("\n\n".join(problems) + f"\n\nIf the change is intended, run `{render.RENDER_COMMAND} "
                          f"{path.name[:2]}` and read the new outputs before committing them.")


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda path: path.stem)
def test_every_lesson_shows_output(path):
    blocks = render.parse(path.read_text(encoding="utf-8"))
    assert sum(block.shown is not None for block in blocks) >= 2, f"{path.name} shows almost no output"


def test_a_changed_digit_fails(tmp_path):
    """The check is exact: one digit changed in a shown output is a failure that names the block."""
    lesson = tmp_path / "99_example.md"
    lesson.write_text("# x\n\n```python\nprint(round(2 / 3, 4))\n```\n\n```output\n0.6667\n```\n\n"
                      "```python\nx = 1\n```\n\n```python\nprint('no block')\n```\n")
    blocks = render.parse(lesson.read_text())
    printed = render.run_lesson(lesson, blocks)
    assert printed == ["0.6667\n", "", "no block\n"]
    problems = render.differences(lesson, blocks, printed)
    assert len(problems) == 1 and "python block 3" in problems[0] and "no ```output block" in problems[0]
    fixed = render.rendered(lesson.read_text(), blocks, printed)
    assert "```output\nno block\n```" in fixed and fixed.count("```output") == 2
    assert not render.differences(lesson, render.parse(fixed), printed)
    changed = fixed.replace("0.6667", "0.6668")
    problems = render.differences(lesson, render.parse(changed), printed)
    assert len(problems) == 1 and "python block 1" in problems[0] and "-0.6668" in problems[0]
    assert "+0.6667" in problems[0]


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda path: path.stem)
def test_tutorial_links_exist(path):
    links = RELATIVE_LINK.findall(path.read_text(encoding="utf-8"))
    assert any("minflaubert/" in link for link in links), f"{path.name} links to no code it explains"
    for link in links:
        assert (path.parent / link).exists(), f"{path.name}: broken link {link}"


def test_lessons_are_numbered_in_order():
    numbers = [int(path.name[:2]) for path in TUTORIALS]
    assert numbers == list(range(1, len(numbers) + 1))


def test_figures_shown_exist_and_are_made_by_the_script():
    figures = {link for path in TUTORIALS for link in FIGURE.findall(path.read_text(encoding="utf-8"))}
    assert len(figures) >= 8, f"the lessons show {len(figures)} figures"
    made = set(load_script("make_figures").FIGURES)
    for link in figures:
        assert (REPO / "tutorials" / link).is_file(), f"missing figure {link}"
        assert link.removeprefix("figures/").removesuffix(".png") in made, f"{link} is made by no script"


def test_figure_script_runs(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is the optional extra .[tutorials]")
    result = subprocess.run([sys.executable, "scripts/make_figures.py", "--quick", "--out", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr[-3000:]
    made = {path.stem for path in tmp_path.glob("*.png")}
    assert made == set(load_script("make_figures").FIGURES), made


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda path: path.stem)
def test_each_lesson_ends_with_exercises(path):
    text = path.read_text(encoding="utf-8")
    assert "## Exercises" in text, f"{path.name} has no exercises"
    assert f"solutions/{path.name[:2]}_" in text.split("## Exercises")[1], f"{path.name}: no link to its solutions"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda path: path.stem)
def test_solution_runs(path, monkeypatch):
    monkeypatch.chdir(REPO)
    with contextlib.redirect_stdout(io.StringIO()):
        runpy.run_path(str(path), run_name="__main__")
