"""Do requirements/*.lock still say what pyproject.toml asks for?

    python -m supplychain.locks      # prints every disagreement, exit 1 if any

`make lock` writes the locks from pyproject.toml; this catches a pyproject.toml edited without `make lock` (a
dependency missing from a lock, or pinned outside its declared range), a lock edited by hand (an entry without a
hash or not pinned with ==, an index or mirror URL, an include), and locks that disagree with each other on a
version. It checks each environment the project runs in (Linux x86_64 and aarch64, CPython 3.11), with every
environment marker evaluated there.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _environment(machine: str) -> dict[str, str]:
    return {
        "implementation_name": "cpython",
        "implementation_version": "3.11.7",
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": "3.11.7",
        "python_version": "3.11",
        "sys_platform": "linux",
    }


# Where the project runs: developers, CI and images on Linux x86_64; images on aarch64 too ([tool.uv] in pyproject).
ENVIRONMENTS: dict[str, dict[str, str]] = {
    "linux-x86_64-cp311": _environment("x86_64"),
    "linux-aarch64-cp311": _environment("aarch64"),
}


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: Marker | None
    hashes: tuple[str, ...]
    line: int

    def applies(self, environment: Mapping[str, str]) -> bool:
        return self.marker is None or self.marker.evaluate(dict(environment))


@dataclass(frozen=True)
class Lock:
    path: Path
    pins: tuple[Pin, ...]
    problems: tuple[str, ...]

    def versions(self, environment: Mapping[str, str]) -> dict[str, str]:
        return {pin.name: pin.version for pin in self.pins if pin.applies(environment)}


_HASH = re.compile(r"--hash[= ](sha256:[0-9a-f]{64})\b")


def parse_lock(path: Path, text: str | None = None) -> Lock:
    """The pins of a hashed requirements file as `uv pip compile --generate-hashes` writes it."""
    text = path.read_text() if text is None else text
    pins: list[Pin] = []
    problems: list[str] = []
    logical: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        if pending.strip():
            logical.append((start, pending.strip()))
        pending = ""
    for number, entry in logical:
        where = f"{path.name}:{number}"
        if "://" in entry:
            problems.append(f"{where}: a URL in a lock (index, mirror or direct reference): {entry[:80]!r}")
            continue
        if entry.startswith("-"):
            problems.append(f"{where}: an option in a lock (only pinned, hashed requirements belong there): {entry!r}")
            continue
        hashes = tuple(_HASH.findall(entry))
        requirement_text = _HASH.sub("", entry).strip()
        if " -" in requirement_text:
            problems.append(f"{where}: an option other than --hash=sha256:... in the entry {requirement_text!r}")
            continue
        try:
            requirement = Requirement(requirement_text)
        except InvalidRequirement as error:
            problems.append(f"{where}: not a requirement: {error}")
            continue
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            problems.append(f"{where}: {requirement.name} is not pinned to one version with ==")
            continue
        if not hashes:
            problems.append(f"{where}: {requirement.name} has no --hash (pip --require-hashes refuses it)")
        pins.append(Pin(canonicalize_name(requirement.name), specifiers[0].version, requirement.marker, hashes, number))
    for environment_name, environment in ENVIRONMENTS.items():
        seen: dict[str, str] = {}
        for pin in pins:
            if pin.applies(environment):
                if pin.name in seen and seen[pin.name] != pin.version:
                    problems.append(f"{path.name}: {pin.name} pinned twice for {environment_name}")
                seen[pin.name] = pin.version
    return Lock(path, tuple(pins), tuple(problems))


def declared(pyproject: Mapping[str, object], extras: Iterable[str], *, base: bool) -> list[Requirement]:
    """The project's requirements: [project].dependencies (if base) and the named extras, self-references expanded."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    own = canonicalize_name(str(project["name"]))
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    result: list[Requirement] = [Requirement(text) for text in project.get("dependencies", [])] if base else []
    todo, done = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in done:
            continue
        done.add(extra)
        for text in optional[extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == own:
                todo.extend(requirement.extras)
            else:
                result.append(requirement)
    return result


def check(
    pyproject: Mapping[str, object],
    locks: Mapping[str, Lock],
    expected: Mapping[str, tuple[bool, Sequence[str]]],
    reference: str,
) -> list[str]:
    """Every disagreement between pyproject.toml and the locks, and between the locks and the reference lock.

    expected maps a lock's name to what it must hold: (the [project].dependencies?, the extras).
    """
    problems: list[str] = []
    for lock in locks.values():
        problems.extend(lock.problems)
    for name, (base, extras) in expected.items():
        lock = locks[name]
        for environment_name, environment in ENVIRONMENTS.items():
            versions = lock.versions(environment)
            for requirement in declared(pyproject, extras, base=base):
                if requirement.marker is not None and not requirement.marker.evaluate({**environment, "extra": ""}):
                    continue
                package = canonicalize_name(requirement.name)
                if package not in versions:
                    problems.append(
                        f"{name}: {requirement} is declared in pyproject.toml but not locked for {environment_name}"
                        " (run `make lock`)"
                    )
                elif not requirement.specifier.contains(versions[package], prereleases=True):
                    problems.append(
                        f"{name}: {package}=={versions[package]} is outside pyproject.toml's {requirement}"
                        " (run `make lock`)"
                    )
            if name != reference:
                pinned = locks[reference].versions(environment)
                for locked, version in sorted(versions.items()):
                    if pinned.get(locked) != version:
                        problems.append(
                            f"{name}: {locked}=={version} but {reference} has {pinned.get(locked, 'nothing')}"
                            f" for {environment_name} (run `make lock`)"
                        )
    return sorted(set(problems))


# The project's locks: name -> (holds [project].dependencies, extras it holds). dev.lock is the reference.
PROJECT_LOCKS: dict[str, tuple[bool, Sequence[str]]] = {
    "dev.lock": (True, ["dev"]),
    "runtime.lock": (True, []),
    "codegen.lock": (False, ["codegen"]),
}


def check_project(root: Path = ROOT) -> list[str]:
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    locks = {name: parse_lock(root / "requirements" / name) for name in PROJECT_LOCKS}
    return check(pyproject, locks, PROJECT_LOCKS, "dev.lock")


def main() -> int:
    problems = check_project()
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print("requirements/*.lock agree with pyproject.toml")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
