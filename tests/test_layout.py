"""The packages' layout holds: no import cycle, no upward import, no module over 400 lines.

Each package declares its subpackages from top to bottom (`LAYOUTS`). A module may import from its own
subpackage and from any subpackage below its own, never from one above it, nor from a sibling on the same row
("a | b": two independent parts). Every import counts, the ones inside functions too: a cycle hidden in a
function is still a cycle. The graph is read with `ast`, so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400

# Package folder -> its subpackages (or top-level modules), top to bottom.
LAYOUTS: dict[str, list[str]] = {
    # The container is the composition root: the use cases above it reach it, the pieces below never do.
    "layers/gateway/mistral_gateway": [
        "edge",
        "flow",
        "container",
        "upstream",
        "policies | stores",
        "requests",
        "platform",
    ],
    "local/gateway_dev": ["ops | bench", "runner", "cloud | emulator"],
}


@dataclass(frozen=True)
class Module:
    name: str  # dotted
    path: Path
    is_package: bool  # an __init__.py


def modules(root: Path) -> dict[str, Module]:
    """Every module of the package at `root`, by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        found[name] = Module(name, path, is_package)
    return found


def imports(module: Module, known: dict[str, Module]) -> set[str]:
    """The package's own modules that `module` imports, anywhere in its body."""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(module.path.read_text(), str(module.path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` imports the module pkg.sub when there is one, else a name of pkg.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `import a.b.c` where c is a name: the module a.b
                name = name.rpartition(".")[0]
            if name and name != module.name:
                targets.add(name)
    return targets


def graph(root: Path) -> dict[str, set[str]]:
    known = modules(root)
    return {name: imports(module, known) for name, module in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layer_problems(root: Path, layers: list[str]) -> list[str]:
    """Imports that run up (or across to a sibling), and modules that belong to no declared subpackage (a
    top-level module may be a layer of its own: mistral_gateway's container)."""
    rank = {}
    for position, row in enumerate(layers):
        for part in row.split("|"):
            rank[part.strip()] = position
    package = root.name
    problems = []
    present = {path.parent.name for path in root.glob("*/__init__.py")}
    present |= {path.stem for path in root.glob("*.py") if path.stem in rank}  # a top-level module in a layer
    problems += [f"{package}.{part}: declared, not a subpackage" for part in sorted(set(rank) - present)]
    problems += [f"{package}.{part}: a subpackage in no layer" for part in sorted(present - set(rank))]

    def part_of(name: str) -> str | None:
        parts = name.split(".")
        return parts[1] if len(parts) > 1 and parts[1] in rank else None

    for name, targets in sorted(graph(root).items()):
        source = part_of(name)
        if source is None:
            if name != package:
                problems.append(f"{name}: in no declared subpackage")
            continue
        for target in sorted(targets):
            into = part_of(target)
            if into is None or into == source:
                continue
            if rank[into] < rank[source]:
                problems.append(f"{name} imports {target}: {into} sits above {source}")
            elif rank[into] == rank[source]:
                problems.append(f"{name} imports {target}: {into} and {source} are siblings")
    return problems


def large_modules(root: Path) -> list[str]:
    sizes = {path: len(path.read_text().splitlines()) for path in sorted(root.rglob("*.py"))}
    return [f"{path.relative_to(root.parent)}: {lines} lines" for path, lines in sizes.items() if lines > MAX_LINES]


@pytest.mark.parametrize("package", sorted(LAYOUTS))
def test_no_import_cycle(package: str) -> None:
    # Given the package's modules and what each imports
    # Then no module reaches itself again through its imports
    assert cycles(graph(ROOT / package)) == []


@pytest.mark.parametrize("package", sorted(LAYOUTS))
def test_no_upward_import(package: str) -> None:
    # Given the package's subpackages in their declared order
    # Then every module sits in one, and imports only from its own and from those below it
    assert layer_problems(ROOT / package, LAYOUTS[package]) == []


@pytest.mark.parametrize("package", sorted(LAYOUTS))
def test_no_module_over_400_lines(package: str) -> None:
    assert large_modules(ROOT / package) == []


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    # Given a package with a cycle hidden in a function, an upward import, a sibling import and a long module
    files = {
        "pkg/__init__.py": "",
        "pkg/top/__init__.py": "",
        "pkg/top/cli.py": "from pkg.low import util\n",
        "pkg/top/tool.py": "",
        "pkg/mid/__init__.py": "",
        "pkg/mid/a.py": "from . import b\n",
        "pkg/mid/b.py": "def later():\n    from pkg.mid.a import x\n",
        "pkg/low/__init__.py": "",
        "pkg/low/util.py": "import pkg.top.tool\nfrom ..side import thing\n" + "x = 1\n" * MAX_LINES,
        "pkg/side/__init__.py": "",
        "pkg/side/thing.py": "",
        "pkg/loose.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    root = tmp_path / "pkg"
    # When the checks read it
    found_cycles = cycles(graph(root))
    problems = layer_problems(root, ["top", "mid", "low | side"])
    # Then each fault is named
    assert found_cycles == [["pkg.mid.a", "pkg.mid.b"]]
    assert problems == [
        "pkg.loose: in no declared subpackage",
        "pkg.low.util imports pkg.side.thing: side and low are siblings",
        "pkg.low.util imports pkg.top.tool: top sits above low",
    ]
    assert large_modules(root) == [f"pkg/low/util.py: {MAX_LINES + 2} lines"]
