"""The house has floors: no package of loopformer imports, even lazily inside a function,
a package that imports it back, and no module reaches for another module's private names.

Nodes are the subpackages (``loopformer.tasks``) and the top-level modules
(``loopformer.checkpoint``); every ``import`` statement in the source is read, including
function-local ones, which is where cycles hide."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "loopformer"


def _node(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(absolute module imported, names imported from it, line) for every import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("loopformer")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("loopformer"):
                found.append((target, [a.name for a in node.names], node.lineno))
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        src = _node(_module_name(path))
        for target, names, _ in _imports(path):
            # "from loopformer import x" where x is a subpackage/module counts as that node
            targets = [f"{target}.{n}" for n in names if (SRC / n).exists() or (SRC / f"{n}.py").exists()] \
                if target == "loopformer" else [target]
            for t in targets:
                dst = _node(t)
                if dst != src and dst != "loopformer":
                    graph.setdefault(src, set()).add(dst)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_package_import_graph_has_no_cycle():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_a_private_name_of_another():
    offenders = [f"{p.relative_to(SRC)}:{line} imports {n} from {t}"
                 for p in SRC.rglob("*.py") for t, names, line in _imports(p)
                 for n in names if n.startswith("_") and not n.startswith("__")]
    assert not offenders, "\n".join(offenders)


SUBPACKAGES = sorted(_node(_module_name(p)) for p in SRC.glob("*/__init__.py"))


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_each_package_imports_alone(package):
    """In a fresh interpreter, so that no other package has been imported first."""
    code = f"import importlib; importlib.import_module({package!r})"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_the_graph_reader_sees_function_local_imports():
    graph = _graph()
    assert "loopformer.layers" in graph.get("loopformer.models", set())
    assert importlib.import_module("loopformer.models")


def _private_defs(tree: ast.AST) -> set[str]:
    return {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name.startswith("_")
            and not n.name.startswith("__")}


def test_no_module_calls_a_private_method_defined_in_another():
    """``task._encode_pairs`` from an analysis module is a private name crossing modules."""
    trees = {p: ast.parse(p.read_text()) for p in SRC.rglob("*.py")}
    defined = {p: _private_defs(t) for p, t in trees.items()}
    offenders = []
    for path, tree in trees.items():
        others = set().union(*(d for q, d in defined.items() if q != path)) - defined[path]
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr in others
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} uses .{node.attr}")
    assert not offenders, "\n".join(offenders)


# docs/architecture.md, "The house, floor by floor": a module may import only floors below its own
FLOORS = [["errors"], ["config", "device", "files"], ["layers", "packing"], ["compile", "generate", "sampling"],
          ["beam_aside"], ["models"], ["registry"], ["checkpoint"], ["data"], ["analysis"], ["train"], ["tasks"],
          ["arguments"], ["bench"], ["hf", "harness", "deploy"], ["cli"], ["__main__"]]


def test_imports_go_down_the_floors_of_the_house():
    floor = {f"loopformer.{name}": i for i, names in enumerate(FLOORS) for name in names}
    graph = {k: v for k, v in _graph().items() if k != "loopformer"}  # the package root re-exports the API
    assert set(graph) <= set(floor), set(graph) - set(floor)
    upward = [f"{a} -> {b}" for a, targets in graph.items() for b in targets if floor[b] >= floor[a]]
    assert not upward, "imports that go up (or sideways): " + "; ".join(upward)
