"""The import rules of docs/architecture.md, checked on the source: no import loops, libraries never
import the CLI, argparse only in the CLI, imports at module level in the libraries, and the
torch-free boundary of `impasto.serve` (and `impasto stylize`), checked in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

# import name -> folder, as pyproject's package-dir maps them
PACKAGES = {"impasto": "impasto", "impasto.models": "models", "impasto.training": "training",
            "impasto.export": "export", "impasto.serve": "serve", "impasto.compare": "compare"}
CLI = ("impasto.cli", "impasto.commands")
# Imports left inside functions on purpose: optional extras (OpenVINO) and matplotlib's backend,
# chosen when a figure is drawn rather than when the module is imported.
DEFERRED_OK = {("impasto.serve.runtime", "openvino"), ("impasto.serve.runtime", "openvino.frontend"),
               ("impasto.compare.report", "matplotlib"),
               ("impasto.compare.report", "matplotlib.pyplot"),
               # hub datasets alone need it: a folder of photos (a GPU machine's pack) trains without it
               ("impasto.training.fast.data", "datasets")}


def modules() -> dict[str, Path]:
    found = {}
    for name, folder in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            mod = ".".join([name, *parts]) if parts else name
            found.setdefault(mod, path)   # impasto.models is models/, not impasto/models
    return found


MODULES = modules()


def _resolve(mod: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_pkg = MODULES[mod].name == "__init__.py"
    base = mod.split(".")[: len(mod.split(".")) - node.level + (1 if is_pkg else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(mod: str, module_level_only: bool) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for each import of `mod`."""
    tree = ast.parse(MODULES[mod].read_text())
    out = []

    def visit(node, in_function: bool, type_checking: bool):
        for child in ast.iter_child_nodes(node):
            fn = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            tc = type_checking or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            if isinstance(child, ast.Import) and not tc:
                out.extend((a.name, child.lineno, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and not tc:
                base = _resolve(mod, child)
                for a in child.names:
                    sub = f"{base}.{a.name}"
                    out.append((sub if sub in MODULES else base, child.lineno, in_function))
            visit(child, fn, tc)
    visit(tree, False, False)
    return [i for i in out if not (module_level_only and i[2])]


def is_cli(mod: str) -> bool:
    return mod.startswith(CLI)


def test_no_import_loops():
    graph = {m: {t for t, _, _ in imports(m, True) if t in MODULES and t != m} for m in MODULES}
    loops, state = [], {}

    def walk(m, stack):
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                loops.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                walk(t, stack + [t])
        state[m] = 2
    for m in sorted(graph):
        if m not in state:
            walk(m, [m])
    assert not loops, "import loops:\n" + "\n".join(loops)


def test_libraries_never_import_the_cli_and_only_the_cli_parses_arguments():
    bad = []
    for m in MODULES:
        if is_cli(m):
            continue
        for target, line, _ in imports(m, False):
            if target.startswith(CLI):
                bad.append(f"{m}:{line} imports {target}")
            if target == "argparse" and not m.endswith("__main__"):
                bad.append(f"{m}:{line} uses argparse (options belong to impasto.commands)")
    assert not bad, "\n".join(bad)


def test_library_imports_are_at_module_level():
    """Only the CLI defers imports (so `impasto --help` and `impasto stylize` start fast and
    torch-free); the libraries import what they use at the top."""
    bad = [f"{m}:{line} imports {target} inside a function"
           for m in MODULES if not is_cli(m)
           for target, line, inside in imports(m, False)
           if inside and (m, target) not in DEFERRED_OK]
    assert not bad, "\n".join(bad)


def test_models_import_none_of_the_other_libraries():
    bad = [f"{m} imports {t}" for m in MODULES if m.startswith("impasto.models")
           for t, _, _ in imports(m, False)
           if t.startswith(("impasto.training", "impasto.export", "impasto.serve", "impasto.compare"))]
    assert not bad, "\n".join(bad)


SERVE_MODULES = sorted(m for m in MODULES if m.startswith("impasto.serve"))


@pytest.mark.slow
@pytest.mark.parametrize("entry", [", ".join(SERVE_MODULES), "impasto.commands.stylize, impasto.models.zoo.card"])
def test_serve_and_stylize_never_import_torch(entry):
    """The server and `impasto stylize` run on onnxruntime + numpy + Pillow alone."""
    code = (f"import importlib, sys\n"
            f"for m in {entry.split(', ')!r}: importlib.import_module(m)\n"
            "import impasto.cli\n"
            "heavy = sorted(m for m in ('torch', 'torchvision', 'pytorch_lightning') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
