"""The package's import graph, read from the source (ast): no cycle, and loaders never import models.

DESIGN.md §"Imports one way": models may use the loaders' key tables; a loader never imports a model (the model classes'
`from_single_file` hands the loader what it needs), and no loader looks a class up by a string (`import_module`). Every
import counts, the ones inside functions too: a function-level import that only dodges a cycle is still a cycle.
"""

import ast
from pathlib import Path

import ltx2_diffusers

PACKAGE_ROOT = Path(ltx2_diffusers.__file__).parent
PACKAGE = "ltx2_diffusers"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _run_time_nodes(tree: ast.AST):
    """Every node, except those under `if TYPE_CHECKING:` (never run, so they cannot make a cycle at run time)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            test = getattr(child, "test", None)
            if isinstance(child, ast.If) and isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
                stack.extend(child.orelse)
                continue
            stack.append(child)


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that `name` imports anywhere in its run-time source (module level and functions)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in _run_time_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import sub` imports the submodule pkg.sub when there is one
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module for alias in node.names
            ]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imported_modules(name, path, set(modules)) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def uses_import_module(path: Path) -> bool:
    """Does the module call importlib's import_module (or __import__): a class looked up by its name?"""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module == "importlib":
            if any(alias.name == "import_module" for alias in node.names):
                return True
        if isinstance(node, ast.Attribute) and node.attr == "import_module":
            return True
        if isinstance(node, ast.Name) and node.id == "__import__":
            return True
    return False


# loaders/lora.py (owned by the LoRA work, issue 8 point 3) still builds the transformer to list its linears; the
# transformer's LoRA methods import loaders/lora.py. The one known edge until that work inverts it.


def test_graph_sees_relative_and_function_level_imports(tmp_path):
    graph = import_graph()
    assert "ltx2_diffusers.loaders.renames" in graph["ltx2_diffusers.loaders.connector_keys"]
    assert "ltx2_diffusers.models.fp8" in graph["ltx2_diffusers.models.transformer_ltx2"]  # `from . import fp8`
    assert "ltx2_diffusers.loaders.plan" in graph["ltx2_diffusers.loaders.single_file"]
    assert "ltx2_diffusers.models.transformer_ltx2" not in graph["ltx2_diffusers"]  # TYPE_CHECKING only
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    lookup = tmp_path / "lookup.py"
    lookup.write_text("def f():\n    from importlib import import_module\n    return import_module('x')\n")
    assert uses_import_module(lookup)
    lookup.write_text("import importlib\nimportlib.import_module('x')\n")
    assert uses_import_module(lookup)
    lookup.write_text("import json\n")
    assert not uses_import_module(lookup)


def test_no_import_cycles():
    assert find_cycles(import_graph()) == []


def test_loaders_never_import_models():
    graph = import_graph()
    edges = {
        (loader, model)
        for loader, imported in graph.items()
        if loader.startswith(f"{PACKAGE}.loaders")
        for model in imported
        if model.startswith(f"{PACKAGE}.models")
    }
    assert edges == set()


def test_no_loader_looks_a_class_up_by_name():
    lookups = [name for name, path in package_modules().items() if name.startswith(f"{PACKAGE}.loaders")]
    assert [name for name in lookups if uses_import_module(package_modules()[name])] == []
