"""The package's layers: pure logic imports without Dagster, and Dagster's private names come
through one module; test modules share helpers through ``support/`` only."""

from __future__ import annotations

import ast
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import hyperion_pipelines

from ..conftest import REPO

PACKAGE = Path(hyperion_pipelines.__file__).parent

#: The Dagster layer: definitions, resources, sensors, the run launcher, and the names taken from
#: Dagster's private modules. Every other module is logic that runs and is tested without Dagster.
DAGSTER_LAYER = (
    "hyperion_pipelines.definitions",
    "hyperion_pipelines.dagster_internals",
    "hyperion_pipelines.orchestration",
    "hyperion_pipelines.components",
    "hyperion_pipelines.instance",
)

_IMPORT_WITHOUT_DAGSTER = """
import importlib, sys

class NoDagster:
    def find_spec(self, name, path=None, target=None):
        if name == "dagster" or name.startswith(("dagster.", "dagster_")):
            raise ImportError(f"{name} is not importable here")

sys.meta_path.insert(0, NoDagster())
for module in sys.argv[1:]:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        print(f"{module}: {exc}")
"""


def in_dagster_layer(module: str) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in DAGSTER_LAYER)


def test_every_module_outside_the_dagster_layer_imports_without_dagster() -> None:
    modules = [m.name for m in pkgutil.walk_packages([str(PACKAGE)], "hyperion_pipelines.")]
    pure = [m for m in modules if not in_dagster_layer(m)]
    assert "hyperion_pipelines.chunking.stage" in pure and len(pure) > 50
    found = subprocess.run(
        [sys.executable, "-c", _IMPORT_WITHOUT_DAGSTER, *pure], capture_output=True, text=True, check=True
    )
    assert found.stdout == "", f"modules outside the Dagster layer that need Dagster:\n{found.stdout}"


def test_only_one_module_imports_dagsters_private_names() -> None:
    private = re.compile(r"^\s*(from dagster\._|import dagster\._|from dagster import _)", re.MULTILINE)
    users = sorted(
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if private.search(path.read_text(encoding="utf-8"))
    )
    assert users == ["dagster_internals.py"]


def package_imports() -> dict[str, set[str]]:
    """For each subpackage (or top-level module), the others its modules import."""
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).with_suffix("").parts
        source = relative[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _imported_parts(node, "hyperion_pipelines"):
                if target != source:
                    edges.setdefault(source, set()).add(target)
    return edges


def _imported_parts(node: ast.AST, package: str) -> list[str]:
    """The modules or subpackages of ``package`` an import statement names, by their first part
    below it (``from package.a.b import c`` -> a; ``from package import a, b`` -> a, b;
    ``import package.a`` -> a). A relative import is read as one from ``package``'s top level,
    where the test modules import from (the code package uses none)."""
    return [name.split(".")[0] for name in _imported_modules(node, package)]


def _imported_modules(node: ast.AST, package: str) -> list[str]:
    """The dotted names below ``package`` an import statement names (``from package.a.b import c``
    -> a.b; ``from package.a import b, c`` -> a; ``from package import a, b`` -> a, b). A relative
    import of any depth is read as one from ``package``'s top level."""
    if isinstance(node, ast.Import):
        return [alias.name.removeprefix(package + ".") for alias in node.names if alias.name.startswith(package + ".")]
    if not isinstance(node, ast.ImportFrom):
        return []
    module = node.module or ""
    if node.level == 0 and module != package and not module.startswith(package + "."):
        return []
    below = module.removeprefix(package).lstrip(".") if node.level == 0 else module
    return [below] if below else [alias.name for alias in node.names]


def test_no_two_packages_import_each_other() -> None:
    edges = package_imports()
    assert "sources" in edges["parsing"]  # parsing reads what landing stored
    circles = sorted((a, b) for a, targets in edges.items() for b in targets if a < b and a in edges.get(b, ()))
    assert circles == []


def test_test_modules_share_helpers_through_support_only() -> None:
    """A helper two test modules use lives in ``support/`` (or ``fixtures/``, ``conftest``), so a
    test module can be moved, renamed or run alone without breaking another."""
    tests = Path(__file__).parents[1]
    importers = [
        *sorted(tests.rglob("test_*.py")),
        *sorted(tests.glob("support/*.py")),
        *sorted(REPO.glob("benchmarks/*.py")),
    ]
    borrowed = []
    for path in importers:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for module in _imported_modules(node, "hyperion_pipelines_tests"):
                if any(part.startswith("test_") for part in module.split(".")):
                    borrowed.append(f"{path.relative_to(REPO)} imports {module}")
    assert len(list(tests.rglob("test_*.py"))) > 40 and len(importers) > 60  # the globs found the modules
    assert borrowed == []


def test_test_modules_sit_beside_the_package_they_test() -> None:
    """Tests are placed by what they test: a folder per package of ``hyperion_pipelines`` (its
    name), and ``system/`` for the whole product (faults, security, the UI, deployment, docs)."""
    tests = Path(__file__).parents[1]
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    folders = {path.parent.name for path in tests.rglob("test_*.py")}
    assert not list(tests.glob("test_*.py"))  # none left at the top
    assert folders - packages == {"system"}
    for folder in folders:
        assert (tests / folder / "__init__.py").is_file()
