"""requirements/*.lock agree with pyproject.toml, carry a hash for every pin, name no index, and are what make and
the Dockerfile install (docs/dependencies.md, docs/security.md "Supply chain")."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from supplychain import locks

ROOT = Path(__file__).resolve().parents[3]
H1 = "--hash=sha256:" + "a" * 64
H2 = "--hash=sha256:" + "b" * 64

PYPROJECT = {
    "project": {
        "name": "demo",
        "dependencies": ["httpx>=0.27", "uvloop>=0.19; sys_platform != 'win32'"],
        "optional-dependencies": {
            "codegen": ["grpcio-tools>=1.66"],
            "dev": ["demo[codegen]", "pytest>=8", "atheris>=2.3; platform_machine == 'x86_64'"],
        },
    }
}
EXPECTED = {"dev.lock": (True, ["dev"]), "runtime.lock": (True, [])}

GOOD_DEV = f"""# made by make lock
httpx==0.28.1 \\
    {H1} \\
    {H2}
    # via demo (pyproject.toml)
uvloop==0.21.0 ; sys_platform != 'win32' \\
    {H1}
grpcio-tools==1.85.1 \\
    {H1}
pytest==8.3.0 \\
    {H1}
atheris==3.0.0 ; platform_machine == 'x86_64' and sys_platform == 'linux' \\
    {H1}
"""
GOOD_RUNTIME = f"""httpx==0.28.1 \\
    {H1}
uvloop==0.21.0 ; sys_platform != 'win32' \\
    {H2}
"""


def run_check(dev: str = GOOD_DEV, runtime: str = GOOD_RUNTIME) -> list[str]:
    parsed = {
        "dev.lock": locks.parse_lock(Path("dev.lock"), dev),
        "runtime.lock": locks.parse_lock(Path("runtime.lock"), runtime),
    }
    return locks.check(PYPROJECT, parsed, EXPECTED, "dev.lock")


def test_the_projects_locks_agree_with_pyproject_and_each_other() -> None:
    assert locks.check_project(ROOT) == []


def test_every_dependency_of_pyproject_is_in_the_lock_that_should_hold_it() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = locks.parse_lock(ROOT / "requirements/runtime.lock").versions(locks.ENVIRONMENTS["linux-x86_64-cp311"])
    dev = locks.parse_lock(ROOT / "requirements/dev.lock").versions(locks.ENVIRONMENTS["linux-x86_64-cp311"])
    declared = {r.name.lower() for r in locks.declared(pyproject, [], base=True)}
    assert declared and declared <= set(runtime)
    assert {"pip-audit", "uv", "grpcio-tools", "atheris"} <= set(dev)
    assert not {"pytest", "pip-audit", "uv", "helm-python-sdk"} & set(runtime), "development tools in the image"


def test_a_consistent_example_passes() -> None:
    assert run_check() == []


def test_a_dependency_missing_from_a_lock_fails() -> None:
    dev = GOOD_DEV.replace(f"pytest==8.3.0 \\\n    {H1}\n", "")
    problems = run_check(dev=dev)
    assert any("dev.lock: pytest>=8 is declared in pyproject.toml but not locked" in p for p in problems), problems


def test_a_platform_dependency_missing_only_where_it_applies_fails_there() -> None:
    dev = GOOD_DEV.replace("platform_machine == 'x86_64' and", "platform_machine == 'aarch64' and")
    problems = run_check(dev=dev)
    assert any("atheris" in p and "linux-x86_64-cp311" in p for p in problems), problems
    assert not any("atheris" in p and "linux-aarch64-cp311" in p for p in problems), problems


def test_a_pin_outside_the_declared_range_fails() -> None:
    problems = run_check(dev=GOOD_DEV.replace("pytest==8.3.0", "pytest==7.4.0"))
    assert any("pytest==7.4.0 is outside pyproject.toml's pytest>=8" in p for p in problems), problems


def test_a_lock_entry_without_hashes_fails() -> None:
    runtime = GOOD_RUNTIME.replace(f"httpx==0.28.1 \\\n    {H1}\n", "httpx==0.28.1\n")
    problems = run_check(runtime=runtime)
    assert any("runtime.lock:1: httpx has no --hash" in p for p in problems), problems


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("--index-url https://mirror.example/simple", "a URL in a lock"),
        ("--find-links /opt/wheels", "an option in a lock"),
        ("-e .", "an option in a lock"),
        (f"demo-extra @ https://example.test/demo.whl {H1}", "a URL in a lock"),
        (f"httpx>=0.28 {H1}", "not pinned to one version"),
        (f"httpx==0.28.* {H1}", "not pinned to one version"),
        (f"httpx==0.28.1 --no-binary httpx {H1}", "an option other than --hash"),
    ],
)
def test_options_urls_and_loose_pins_in_a_lock_fail(line: str, complaint: str) -> None:
    problems = run_check(runtime=GOOD_RUNTIME + line + "\n")
    assert any(complaint in p for p in problems), problems


def test_locks_that_disagree_on_a_version_fail() -> None:
    problems = run_check(runtime=GOOD_RUNTIME.replace("uvloop==0.21.0", "uvloop==0.22.1"))
    assert any("runtime.lock: uvloop==0.22.1 but dev.lock has 0.21.0" in p for p in problems), problems


def test_the_locks_name_no_index_or_mirror() -> None:
    for lock in sorted((ROOT / "requirements").glob("*.lock")):
        text = lock.read_text()
        assert "://" not in text and "--index" not in text and "--find-links" not in text, lock
        assert "/opt/" not in text, lock


def _pip_installs(text: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", text)
    return [m.group(0).strip() for m in re.finditer(r"pip install[^\n&;|]*", joined)]


def test_make_and_the_dockerfile_install_python_packages_only_from_the_locks() -> None:
    installs = _pip_installs((ROOT / "Makefile").read_text()) + _pip_installs((ROOT / "Dockerfile").read_text())
    assert len(installs) >= 5, installs
    for command in installs:
        from_lock = re.search(r"--require-hashes -r (requirements/)?(runtime|dev|codegen)\.lock$", command)
        # The project's own packages from the work tree, adding nothing: no dependencies, no build isolation.
        own = re.search(r"--no-deps (\S+ )*(-e \.|\./clients/python)$", command) and "--no-build-isolation" in command
        assert from_lock or own, f"installs something not from a hashed lock: {command}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements/runtime.lock" in dockerfile and "requirements/codegen.lock" in dockerfile
    assert "!requirements" in (ROOT / ".dockerignore").read_text()
