"""The structure ARCHITECTURE.md describes, checked from the code's own imports.

Every import counts, including the ones inside functions: an import deferred to dodge a cycle
is still a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("worker", "schedules", "notifiers")
# Lower layers first: a module may import its own layer and the ones before it, never after.
LAYERS = ("store", "planning", "registry", "delivery", "ops", "http", "cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "versions" in path.parts:  # Alembic revisions are data, not architecture
                continue
            found[module_name(path)] = path
    return found


MODULES = project_modules()


def imports_of(name: str) -> Iterator[str]:
    """Project modules imported by `name`, resolved to the deepest module that exists."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name and target.split(".")[0] in PACKAGES:
                yield target


GRAPH = {name: set(imports_of(name)) for name in MODULES}


def layer_of(name: str) -> int | None:
    parts = name.split(".")
    if parts[0] != "worker" or len(parts) < 2 or parts[1] not in LAYERS:
        return None
    return LAYERS.index(parts[1])


def test_the_project_has_no_import_cycle() -> None:
    seen: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        seen[name] = 1
        for target in sorted(GRAPH[name]):
            if target.startswith(name + "."):
                continue  # a package importing its own submodule is not a cycle
            if seen.get(target) == 1:
                cycles.append([*path[path.index(target):], target] if target in path else [name, target])
            elif target not in seen:
                visit(target, [*path, target])
        seen[name] = 2

    for name in sorted(GRAPH):
        if name not in seen:
            visit(name, [name])
    assert cycles == []


def test_worker_layers_import_only_downwards() -> None:
    upward = [
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        for target in targets
        if (mine := layer_of(name)) is not None and (theirs := layer_of(target)) is not None and theirs > mine
    ]
    assert upward == []


@pytest.mark.parametrize("package", ["schedules", "notifiers"])
def test_the_domain_and_the_adapters_import_nothing_of_the_runtime(package: str) -> None:
    outward = sorted(
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        if name.split(".")[0] == package
        for target in targets
        if target.split(".")[0] != package and not (package == "notifiers" and target.startswith("schedules"))
    )
    assert outward == []


def test_the_core_reaches_providers_only_through_the_interface_and_the_registry() -> None:
    allowed = {"notifiers", "notifiers.base", "notifiers.registry"}
    direct = sorted(
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        if name.startswith("worker.")
        for target in targets
        if target.startswith("notifiers") and target not in allowed
    )
    assert direct == []


def test_the_checker_sees_imports_inside_functions() -> None:
    # `serve` imports the web app only when it runs; the graph must still show that edge.
    assert "worker.http.app" in GRAPH["worker.cli.main"]


def test_the_lockfile_pins_every_dependency_within_pyproject_ranges() -> None:
    """requirements.lock (make lock) is what make, CI and the image install: a dependency added to
    pyproject.toml without re-locking, or a pin outside its range, fails here."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["test"]]]
    pins = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    for requirement in wanted:
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, f"{requirement.name} is not in requirements.lock: run make lock"
        assert requirement.specifier.contains(pinned, prereleases=True), f"{requirement.name}=={pinned} vs {requirement}"
