"""Every third-party package the code imports directly is declared in the pyproject.toml that ships that code, not
merely installed as somebody else's dependency (a transitive dependency can vanish in any upgrade, and the lock would
drop it with no error until run time). Which distribution provides an import is read from the installed packages'
RECORDs, so `google.rpc` is googleapis-common-protos and `google.protobuf` is protobuf."""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterable
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from supplychain import locks

ROOT = Path(__file__).resolve().parents[3]
FIRST_PARTY = {"cakemail", "cakemail_gateway", "gateway_common", "gateway_mime", "smtp_edge", "forwarder"}
FIRST_PARTY |= {"cakemail_sandbox", "devstack", "supplychain", "bench", "tests"}
OWN_DISTRIBUTIONS = {"cakemail-smtp-gateway", "cakemail-gateway-client"}


@cache
def providers() -> dict[str, set[str]]:
    """Dotted module or package name -> the installed distributions whose files hold it."""
    found: dict[str, set[str]] = {}
    for distribution in metadata.distributions():
        name = canonicalize_name(distribution.metadata["Name"])
        for file in distribution.files or []:
            parts = file.parts
            if not parts or parts[0].endswith((".dist-info", ".data")) or ".." in parts:
                continue
            if parts[-1].endswith((".py", ".pyi", ".so")):
                module = [*parts[:-1], parts[-1].split(".")[0]]
                if module[-1] == "__init__":
                    module.pop()
                for depth in range(1, len(module) + 1):
                    found.setdefault(".".join(module[:depth]), set()).add(name)
    return found


def imported(paths: Iterable[Path]) -> dict[str, str]:
    """Third-party module names imported anywhere under paths -> one file importing it. For `from a import b`, b is
    taken when it is a module itself (`from opentelemetry import trace` is opentelemetry.trace)."""
    result: dict[str, str] = {}
    for path in paths:
        for file in sorted(path.rglob("*.py")):
            if "node_modules" in file.parts:  # npm packages of the client matrix (tests/clients/node), not ours
                continue
            tree = ast.parse(file.read_text(), str(file))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [f"{node.module}.{alias.name}" for alias in node.names]
                    names = [n if n in providers() else node.module for n in names]
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                        result.setdefault(name, str(file.relative_to(ROOT)))
    return result


def distributions_of(module: str) -> set[str]:
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        found = providers().get(".".join(parts[:depth]))
        if found:
            return found - OWN_DISTRIBUTIONS
    return set()


def undeclared(paths: Iterable[Path], declared: Iterable[Requirement]) -> list[str]:
    names = {canonicalize_name(r.name) for r in declared}
    problems = []
    for module, where in sorted(imported(paths).items()):
        distributions = distributions_of(module)
        if not distributions and canonicalize_name(module.split(".")[0]) in names:
            continue  # declared, but not for this platform (atheris: Linux x86_64 only), so not installed here
        if not distributions:
            problems.append(f"{where}: imports {module}, which no installed distribution provides")
        elif not distributions & names:
            problems.append(f"{where}: imports {module} (from {', '.join(sorted(distributions))}), not declared")
    return problems


def gateway_pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_services_import_only_their_runtime_dependencies() -> None:
    runtime = locks.declared(gateway_pyproject(), [], base=True)
    assert undeclared(sorted((ROOT / "services").glob("*/src")), runtime) == []


def test_tools_tests_and_benchmarks_import_only_declared_dependencies() -> None:
    everything = locks.declared(gateway_pyproject(), ["dev"], base=True)
    assert undeclared([ROOT / "tools", ROOT / "tests", ROOT / "bench"], everything) == []


def test_the_client_package_imports_only_its_own_dependencies() -> None:
    client = tomllib.loads((ROOT / "clients/python/pyproject.toml").read_text())
    requirements = [Requirement(text) for text in client["project"]["dependencies"]]
    assert undeclared([ROOT / "clients/python/src"], requirements) == []


@pytest.mark.parametrize(
    ("source", "dependencies", "problem"),
    [
        ("from google.rpc import status_pb2\n", ["protobuf"], "google.rpc.status_pb2 (from googleapis-common-protos)"),
        ("import pydantic\n", ["pydantic-settings"], "imports pydantic (from pydantic)"),
        ("from opentelemetry.sdk.trace import TracerProvider\n", ["opentelemetry-api"], "from opentelemetry-sdk"),
        ("import surely_not_installed_anywhere\n", [], "no installed distribution provides"),
    ],
)
def test_the_check_catches_an_undeclared_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, dependencies: list[str], problem: str
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(source)
    problems = undeclared([tmp_path / "pkg"], [Requirement(d) for d in dependencies])
    assert len(problems) == 1 and problem in problems[0], problems
