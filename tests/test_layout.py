"""Project-level rules: core stays a pure library, code passes ruff, no weights in git."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_core_never_imports_ui_or_web_frameworks() -> None:
    offenders = []
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("streamlit", "fastapi")]
    assert not offenders, offenders


def test_the_library_imports_no_front_end() -> None:
    """The CLI, the API and the dashboard sit on top of core; only ``python -m core`` (an alias) reaches up."""
    front_ends = {"cli", "api", "dashboard", "pages"}
    offenders = [p.name for p in (ROOT / "core").rglob("*.py")
                 if p.name != "__main__.py" and _imported_roots(p) & front_ends]
    assert not offenders, offenders


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_dashboard_modules_do_not_import_the_pages() -> None:
    """Pages import dashboard/; only the entry script imports the pages (no import cycle)."""
    offenders = [p.name for p in (ROOT / "dashboard").glob("*.py")
                 if p.name != "app.py" and "pages" in _imported_roots(p)]
    assert not offenders, offenders
    assert "pages" in _imported_roots(ROOT / "dashboard" / "app.py")


def test_core_public_api_is_declared() -> None:
    import core

    missing = [name for name in core.__all__ if not hasattr(core, name)]
    assert not missing and len(core.__all__) == len(set(core.__all__))


@pytest.mark.slow
def test_the_types_check() -> None:
    """mypy (configured in pyproject.toml) finds no error in core, cli and api."""
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_ruff_passes() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    proc = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_model_weights_are_tracked() -> None:
    if not (ROOT / ".git").exists():
        return
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    weights = [f for f in files if f.endswith((".pth", ".pt", ".safetensors", ".ckpt", ".bin", ".onnx"))]
    assert not weights, weights


def test_the_set_up_pins_a_pip_without_known_advisories() -> None:
    """Python 3.11's venv ships pip 23.2, before the fix of CVE-2023-5752; the README's commands pin a newer one."""
    import importlib.metadata
    import re

    version = tuple(int(part) for part in importlib.metadata.version("pip").split(".")[:2])
    assert version >= (23, 3), version
    commands = re.findall(r"^python3\.11 -m venv .*$", (ROOT / "README.md").read_text(), flags=re.MULTILINE)
    assert len(commands) == 2 and all("pip install -q pip==" in c for c in commands), commands
    assert "pip install pip==" in (ROOT / "Dockerfile").read_text()


def test_no_private_name_is_imported_across_modules() -> None:
    """A name one module shares with another is public in it (``__all__``); ``_names`` stay in their module."""
    offenders = []
    for folder in ("core", "cli", "api", "dashboard", "pages"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    offenders += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names
                                  if a.name.startswith("_") and not a.name.startswith("__")]
    assert not offenders, offenders


# core's layers, bottom up: a module may import its own package and the layers below it, never above
_LAYERS = {"base": 0, "models": 1, "metrics": 1, "degradation": 1, "engines": 2, "upscale": 3, "evaluation": 4,
           "pipeline": 5, "compare": 5, "study": 5, "cluster": 6}


def _core_layer(path: Path) -> str:
    parts = path.relative_to(ROOT / "core").parts
    if len(parts) > 1:
        return parts[0]
    return "cluster" if parts[0] == "cluster.py" else "base"


def _core_imports(path: Path) -> set[str]:
    """The layers ``path`` imports (relative imports resolved against its package)."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]  # ("core", "engines")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = (*base, *(node.module.split(".") if node.module else ()))
            names = [target] if node.module else [(*target, a.name) for a in node.names]
            for name in names:
                if len(name) >= 2 and name[0] == "core":
                    candidate = ROOT.joinpath(*name)
                    found.add(_core_layer(candidate.with_suffix(".py") if not candidate.is_dir() else candidate / "x"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("core."):
            candidate = ROOT.joinpath(*node.module.split("."))
            found.add(_core_layer(candidate.with_suffix(".py") if not candidate.is_dir() else candidate / "x"))
    return found


def test_core_layers_import_downwards_only() -> None:
    """models, metrics, degradation <- engines <- upscale <- evaluation <- pipeline <- cluster, over a base of io,
    errors, settings, files, device and cancellation: engines import neither upscale nor evaluation; degradation and
    metrics import no engine; the base imports no package."""
    offenders = []
    for path in (ROOT / "core").rglob("*.py"):
        if path.parent == ROOT / "core" and path.name in ("__init__.py", "__main__.py"):
            continue
        layer = _core_layer(path)
        for imported in _core_imports(path):
            if imported != layer and _LAYERS[imported] >= _LAYERS[layer]:
                offenders.append(f"{path.relative_to(ROOT)} ({layer}) imports {imported}")
    assert not offenders, offenders


def test_the_facade_is_narrow_and_each_package_has_a_face() -> None:
    import core

    assert len(core.__all__) <= 60, len(core.__all__)
    for package in ("models", "engines", "upscale", "metrics", "degradation", "evaluation", "pipeline", "compare",
                    "study"):
        face = getattr(core, package)
        missing = [name for name in face.__all__ if not hasattr(face, name)]
        assert face.__all__ and not missing, (package, missing)


def test_the_core_tests_mirror_the_core_packages() -> None:
    """Each sub-package of ``core`` has its tests in ``tests/core/<package>/``, so that whoever changes one
    finds its tests by its name; the base layer's tests stay in ``tests/core/`` itself."""
    packages = {p.parent.name for p in (ROOT / "core").glob("*/__init__.py")}
    folders = {p.parent.name for p in (ROOT / "tests" / "core").glob("*/__init__.py")}
    assert packages == folders, (sorted(packages - folders), sorted(folders - packages))
    empty = [name for name in packages if not any((ROOT / "tests" / "core" / name).glob("test_*.py"))]
    assert not empty, empty


def test_no_core_module_is_over_450_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "core").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long


def test_no_function_takes_more_than_eight_parameters() -> None:
    """``self`` / ``cls`` not counted; ``*args`` and ``**kwargs`` count as one each."""
    offenders = []
    for folder in ("core", "cli", "api", "dashboard", "pages"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    args = node.args
                    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
                    count = len([n for n in names if n not in ("self", "cls")]) + bool(args.vararg) + bool(args.kwarg)
                    if count > 8:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({count})")
    assert not offenders, offenders
