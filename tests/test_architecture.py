"""The layering of ARCHITECTURE.md, checked: imports point down only (apps -> models -> the math).

Every import statement of the package, top-level or inside a function, is read with ``ast`` and resolved to the
subpackage it names; each subpackage may use only those listed below it here.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "minflaubert"

# subpackage -> the subpackages its modules may import (themselves included)
ALLOWED = {
    "nn": {"nn"},
    "checkpoints": {"checkpoints"},
    "tokenization": {"tokenization", "checkpoints"},
    "models": {"models", "nn", "tokenization", "checkpoints"},
    "apps": {"apps", "models", "nn", "tokenization", "checkpoints", ""},  # "": the package root's __version__
}


def imported_subpackages(path: Path):
    """(line, subpackage) for every minflaubert import in the file; "" stands for the package root itself."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts  # ("minflaubert", "models", "heads")
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(parts[:len(parts) - node.level])
                target = [*base, *(node.module.split(".") if node.module else [])]
            else:
                target = node.module.split(".")
            if target[0] != "minflaubert":
                continue
            if len(target) == 1:  # from minflaubert import x, y: x may itself be a subpackage
                for alias in node.names:
                    yield node.lineno, alias.name if alias.name in ALLOWED else ""
            else:
                yield node.lineno, target[1]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name.split(".")
                if target[0] == "minflaubert":
                    yield node.lineno, target[1] if len(target) > 1 else ""


def test_every_module_lives_in_a_subpackage_of_its_role():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert loose == [], f"modules outside the subpackages of ARCHITECTURE.md: {loose}"
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} == set(ALLOWED)


@pytest.mark.parametrize("subpackage", sorted(ALLOWED))
def test_imports_point_down_only(subpackage):
    wrong = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {target or 'minflaubert'}"
             for path in sorted((PACKAGE / subpackage).glob("*.py"))
             for line, target in imported_subpackages(path) if target not in ALLOWED[subpackage]]
    assert wrong == [], f"{subpackage}/ may import only {sorted(ALLOWED[subpackage])}:\n" + "\n".join(wrong)
