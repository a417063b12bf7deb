"""The project's import graph: no cycles, and each pipeline stage imports only the stages below it.

Every module installed under `archc.` is parsed (not imported) and every `import` statement in
it counts: at the top, inside functions, and under `if TYPE_CHECKING:` (a cycle hidden there is
still a cycle in the design).
"""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

# The stages, lowest first. A module may import its own stage and the stages on lower levels;
# stages on one level (dsl, codegen) do not import each other.
LEVELS = (
    ("foundation",),
    ("ir",),
    ("dsl", "codegen"),
    ("analysis",),
    ("model",),
    ("export",),   # IR and arrays -> ONNX / PyTorch; the runtime runs what it makes
    ("runtime",),
    ("cli",),
)
LEVEL_OF = {stage: level for level, stages in enumerate(LEVELS) for stage in stages}
# `python -m archc` starts the command line: it belongs to that stage, not to the foundation.
ENTRY_POINTS = {"archc.__main__": "cli"}
# Packages whose source folders are scanned (found where the installation maps them); a
# package that does not exist (yet) is skipped.
PACKAGES = ("archc", "archc.ir", "archc.dsl", "archc.codegen", "archc.analysis", "archc.model",
            "archc.export", "archc.runtime", "archc.cli")


def _project_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None:
            continue
        if spec.submodule_search_locations is None:  # a plain module, e.g. archc/model.py
            modules[package] = Path(spec.origin)
            continue
        for folder in spec.submodule_search_locations:
            for path in sorted(Path(folder).rglob("*.py")):
                parts = path.relative_to(folder).with_suffix("").parts
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                modules.setdefault(".".join((package, *parts)), path)
    return modules


MODULES = _project_modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules `name` imports, wherever the import statement stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up `level - 1` packages
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                # `from archc.runtime import weights` imports a module; `from archc.ir import OPS`
                # imports the package.
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {module for module in found if module in MODULES and module != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def stage_of(module: str) -> str:
    if module in ENTRY_POINTS:
        return ENTRY_POINTS[module]
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LEVEL_OF else "foundation"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component that has one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(component, graph) for component in components]


def _cycle_in(component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A path from the component's first module back to itself, for the failure message."""
    start = min(component)
    paths = {start: [start]}
    pending = [start]
    while pending:
        node = pending.pop(0)
        for successor in sorted(graph[node] & component):
            if successor == start:
                return [*paths[node], start]
            if successor not in paths:
                paths[successor] = [*paths[node], successor]
                pending.append(successor)
    raise AssertionError(f"no cycle in {component}")  # pragma: no cover - Tarjan found one


def test_the_whole_project_is_scanned():
    assert {"archc.errors", "archc.ir.net", "archc.dsl.elaborate", "archc.dsl.expressions",
            "archc.codegen.render", "archc.analysis.diff", "archc.runtime.loader",
            "archc.cli.main"} <= set(MODULES)
    assert GRAPH["archc.dsl.elaborate"] >= {"archc.dsl.expressions", "archc.dsl.values"}


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_stage_imports_only_lower_stages(module):
    stage = stage_of(module)
    wrong = sorted(imported for imported in GRAPH[module]
                   if stage_of(imported) != stage
                   and LEVEL_OF[stage_of(imported)] >= LEVEL_OF[stage])
    assert not wrong, (f"{module} ({stage}) imports {', '.join(wrong)} "
                       f"({', '.join(sorted({stage_of(w) for w in wrong}))}): "
                       f"the pipeline runs {' < '.join('/'.join(level) for level in LEVELS)}")


def test_the_checks_see_cycles_in_functions_and_under_type_checking(tmp_path):
    source = tmp_path / "b.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from archc.dsl.elaborate import Elaborator\n"
                      "def f():\n    import archc.ir.net\n")
    assert _imports("archc.dsl.b", source) == {"archc.dsl.elaborate", "archc.ir.net"}
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert stage_of("archc.model") == "model" and stage_of("archc.files") == "foundation"
    assert stage_of("archc.__main__") == "cli"
