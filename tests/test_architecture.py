"""Layers only look down: data → transforms → models → inference → evaluation → training → cli.

Run as a script to print the package's import graph by layer: ``python tests/test_architecture.py``.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "brats3d"
# Lowest first. A module may import from its own layer or any layer below it, never above.
LAYERS: list[tuple[str, ...]] = [
    ("brats3d", "brats3d.errors", "brats3d.files"),
    ("brats3d.data",),
    ("brats3d.transforms", "brats3d.visualize"),
    ("brats3d.models", "brats3d.config"),  # the config names networks and losses; checkpoints embed configs
    ("brats3d.inference",),
    ("brats3d.evaluation",),
    ("brats3d.training",),
    ("brats3d.demo", "brats3d.cli"),
]


def layer_of(module: str) -> int:
    """Index in LAYERS of the most specific prefix that names ``module``."""
    best, best_len = -1, -1
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best_len:
                best, best_len = i, len(name)
    return best


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every brats3d module and the brats3d modules it imports (module level and inside functions)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        graph[name]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("brats3d"):
                graph[name].add(node.module)
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name.startswith("brats3d"))
    return graph


def upward_imports() -> list[str]:
    return [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]


def test_every_module_has_a_layer():
    assert [m for m in import_graph() if layer_of(m) < 0] == []


def test_no_import_runs_up_the_layers():
    assert upward_imports() == []


def test_inference_and_evaluation_import_nothing_from_training():
    graph = import_graph()
    offenders = [
        (m, t)
        for m, targets in graph.items()
        if m.startswith(("brats3d.inference", "brats3d.evaluation"))
        for t in targets
        if t.startswith("brats3d.training")
    ]
    assert offenders == []


if __name__ == "__main__":
    graph = import_graph()
    for i, names in enumerate(LAYERS):
        print(f"layer {i}: {', '.join(names)}")
        for module in sorted(m for m in graph if layer_of(m) == i):
            below = sorted(t for t in graph[module] if t != module)
            print(f"  {module} <- {', '.join(below) or '-'}")
    problems = upward_imports()
    print("\n".join(["", *problems]) if problems else "\nno upward imports")
    sys.exit(1 if problems else 0)
