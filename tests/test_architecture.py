"""The import rules of docs/architecture.md, read from the source: what each part may import, and
no import cycle inside the learner (imports under ``TYPE_CHECKING`` count: they hide a cycle, not
remove it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "learner": ("server", "simulator", "bench", "grpc", "pricing"),
    "server": ("simulator", "bench"),
    "simulator": ("server", "bench"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` names in an import, wherever the import statement sits."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def sources(part: str) -> dict[str, Path]:
    return {module_name(path): path for path in sorted((ROOT / part).rglob("*.py"))}


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_each_part_imports_only_what_the_architecture_allows(part: str) -> None:
    broken = sorted(f"{module} imports {name}" for module, path in sources(part).items()
                    for name in imports(path) if name.split(".")[0] in FORBIDDEN[part])
    assert broken == []


def test_the_learner_modules_import_each_other_without_a_cycle() -> None:
    modules = {name: path for name, path in sources("learner").items() if path.name != "__init__.py"}
    edges = {name: {other for other in imports(path) if other in modules} for name, path in modules.items()}
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in trail:
            raise AssertionError("import cycle: " + " -> ".join((*trail[trail.index(name):], name)))
        if name not in done:
            for other in sorted(edges[name]):
                visit(other, (*trail, name))
            done.add(name)

    for name in sorted(modules):
        visit(name, ())


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_the_product_packages_hold_no_test_harness(part: str) -> None:
    """A test helper fails with AssertionError; product code says what went wrong in its own errors."""
    raising = sorted(module for module, path in sources(part).items()
                     for node in ast.walk(ast.parse(path.read_text()))
                     if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call | ast.Name)
                     and "AssertionError" in ast.unparse(node.exc))
    assert raising == []


def test_tests_share_helpers_through_conftest_not_each_other() -> None:
    crossing = sorted(f"{name} imports {other}" for name, path in sources("tests").items()
                      for other in imports(path) if other.split(".")[0].startswith("test_"))
    assert crossing == []
