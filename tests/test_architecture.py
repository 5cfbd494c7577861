"""The shape of the house: imports point downward, no circles, no generic top-level packages, short functions.

Layers, top to bottom: ``cnmflow.cli`` -> ``cnmflow.deployments`` -> ``cnmflow.flows`` ->
``cnmflow.tasks`` -> the library (every other ``cnmflow`` module). Within the library the engine
knows nothing of orchestration, tracking or file formats.
"""

from __future__ import annotations

import ast
import importlib
import runpy
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Import prefix -> folder, as setup.py installs them.
FOLDERS = {"cnmflow.cli": "cli", "cnmflow.deployments": "deployments", "cnmflow.flows": "flows",
           "cnmflow.tasks": "tasks", "cnmflow": "cnmflow"}
LAYERS = {"cnmflow.cli": 4, "cnmflow.deployments": 3, "cnmflow.flows": 2, "cnmflow.tasks": 1}
LONGEST_FUNCTION = 80
#: The simulators describe one physical model each, step by step; they may run longer.
LONG_FUNCTIONS_ALLOWED_IN = ("cnmflow.synthetic.",)


def _modules() -> dict[str, Path]:
    modules = {}
    for prefix, folder in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([prefix, *parts])
            modules.setdefault(name, path)
    return modules


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(), filename=str(path)) for name, path in MODULES.items()}


def _project_module(name: str) -> str | None:
    """The project module an imported name lives in (``a.b.c`` may be a function in ``a.b``)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imported(module: str, tree: ast.Module) -> set[str]:
    """Project modules ``module`` imports anywhere in its text (lazy imports count too)."""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
            names = submodules if len(submodules) == len(node.names) else [base, *submodules]
        else:
            continue
        found |= {target for n in names if (target := _project_module(n)) and target != module}
    return found


GRAPH = {module: _imported(module, tree) for module, tree in TREES.items()}


def _layer(module: str) -> int:
    return next((level for prefix, level in LAYERS.items() if module == prefix or module.startswith(prefix + ".")), 0)


def test_imports_point_downward():
    upward = sorted(f"{module} -> {target}" for module, targets in GRAPH.items() for target in targets
                    if _layer(target) > _layer(module))
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_the_engine_knows_nothing_of_orchestration_tracking_or_file_formats():
    outside = ("cnmflow.outputs", "cnmflow.tracking", "cnmflow.watch", "cnmflow.movies.isxd", "cnmflow.movies.tiff",
               "cnmflow.movies.avi")
    wrong = sorted(f"{module} -> {target}" for module, targets in GRAPH.items() if module.startswith("cnmflow.engine")
                   for target in targets if _layer(target) > 0 or target.startswith(outside))
    assert not wrong, "\n".join(wrong)
    foreign = sorted(module for module, tree in TREES.items() if module.startswith("cnmflow.engine")
                     for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                     for name in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""])
                     if name.split(".")[0] in ("prefect", "mlflow"))
    assert not foreign, f"the engine imports Prefect or MLflow: {foreign}"


def _circles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for start in sorted(GRAPH):
        if start in index:
            continue
        work = [(start, iter(sorted(GRAPH[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(GRAPH.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


def test_no_import_circle():
    circles = _circles()
    assert not circles, "modules that import each other, directly or around a circle:\n" + "\n".join(
        " <-> ".join(circle) for circle in circles)


def test_no_function_longer_than_80_lines():
    long = sorted(f"{module}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
                  for module, tree in TREES.items() if not module.startswith(LONG_FUNCTIONS_ALLOWED_IN)
                  for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.end_lineno - node.lineno + 1 > LONGEST_FUNCTION)
    assert not long, "\n".join(long)


def test_no_private_name_crosses_a_module():
    crossing = sorted(f"{module}: {alias.name} from {node.module}" for module, tree in TREES.items()
                      for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
                      and _project_module(node.module)
                      for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__"))
    assert not crossing, "\n".join(crossing)


def test_pip_installs_nothing_outside_the_cnmflow_namespace():
    captured = {}
    with mock.patch("setuptools.setup", lambda **kwargs: captured.update(kwargs)), \
            pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        runpy.run_path(str(ROOT / "setup.py"))
    packages = captured["packages"]
    assert {"cnmflow", "cnmflow.cli", "cnmflow.flows", "cnmflow.tasks", "cnmflow.deployments"} <= set(packages)
    assert all(name == "cnmflow" or name.startswith("cnmflow.") for name in packages), packages
    for name, folder in captured["package_dir"].items():
        assert (ROOT / folder / "__init__.py").exists(), f"{name} -> {folder}"
    expected = {".".join([prefix, *init.parent.relative_to(ROOT / folder).parts])
                for prefix, folder in FOLDERS.items() for init in (ROOT / folder).rglob("__init__.py")}
    assert set(packages) == expected, "packages pip would miss or invent"


BENCHMARKS = {path.stem: ast.parse(path.read_text(), filename=str(path))
              for path in sorted((ROOT / "benchmarks").glob("*.py"))}


def _benchmark_imports(tree: ast.Module) -> set[str]:
    return {name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
            for name in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""])}


def test_benchmarks_measure_the_library_not_the_prefect_layers():
    """A benchmark measures the library (or runs the CLI as a user does, in a subprocess); importing a Prefect
    layer would tie its numbers to orchestration it does not mean to time."""
    upward = sorted(f"benchmarks/{script}.py -> {name}" for script, tree in BENCHMARKS.items()
                    for name in _benchmark_imports(tree) if _layer(_project_module(name) or "") > 0)
    assert not upward, "\n".join(upward)
    undocumented = sorted(script for script, tree in BENCHMARKS.items() if not ast.get_docstring(tree))
    assert not undocumented, f"benchmark scripts without a docstring saying what they measure: {undocumented}"


def _module_aliases(tree: ast.Module) -> dict[str, str]:
    """Name in the script -> project module it is bound to (``from cnmflow.engine import fitting``)."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            aliases |= {alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names
                        if f"{node.module}.{alias.name}" in MODULES}
        elif isinstance(node, ast.Import):
            aliases |= {alias.asname: alias.name for alias in node.names if alias.asname and alias.name in MODULES}
    return aliases


def test_every_engine_stage_a_diagnostic_probes_exists():
    """The diagnostics wrap private engine stages by name (``stage_probes.Hook(module, "_greedy")``): a renamed
    stage must fail here, not leave a diagnostic that silently probes nothing."""
    missing, probed = [], 0
    for script, tree in BENCHMARKS.items():
        aliases = _module_aliases(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Hook"
                    and len(node.args) > 1 and isinstance(node.args[0], ast.Name) and node.args[0].id in aliases
                    and isinstance(node.args[1], ast.Constant)):
                continue
            probed += 1
            module = importlib.import_module(aliases[node.args[0].id])
            if not hasattr(module, node.args[1].value):
                missing.append(f"benchmarks/{script}.py: {module.__name__}.{node.args[1].value}")
    assert probed >= 10, "the diagnostics' probes were not found; has Hook's call form changed?"
    assert not missing, "probed stages that no longer exist:\n" + "\n".join(missing)
