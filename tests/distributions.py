"""Requirements files and the installed distributions they pull in, read from the venv's metadata (for the tests
of what `make serve` installs and of what the layer pins)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def requirement_lines(path: Path) -> list[str]:
    """A requirements file's lines, comments and blank lines left out."""
    return [line.split("#")[0].strip() for line in path.read_text().splitlines() if line.split("#")[0].strip()]


def installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def closure(roots: Iterable[tuple[str, frozenset[str]]], environment: dict[str, str] | None = None) -> set[str]:
    """The canonical names of `roots` ((name, extras) pairs) and of everything they require, transitively, as the
    installed metadata says; markers are evaluated in `environment` (this interpreter's when None) and with each
    package's own extras. A required package that is not installed is included, not followed."""
    wanted = list(roots)
    seen: set[tuple[str, frozenset[str]]] = set()
    while wanted:
        name, extras = wanted.pop()
        if (canonicalize_name(name), extras) in seen:
            continue
        seen.add((canonicalize_name(name), extras))
        for text in (importlib.metadata.requires(name) or []) if installed(name) else []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({**(environment or {}), "extra": e}) for e in extras or {""}):
                wanted.append((requirement.name, frozenset(requirement.extras)))
    return {name for name, _ in seen}
