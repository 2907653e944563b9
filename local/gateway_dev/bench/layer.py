"""Figure 6: the layer as `sam build` builds it, and its size by distribution."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from gateway_dev.cloud.template import ROOT


@dataclass(frozen=True)
class Layer:
    measured: bool
    reason: str = ""
    unzipped_bytes: int = 0
    zipped_bytes: int = 0
    packages: list[tuple[str, int]] = field(default_factory=list)  # distribution -> bytes, largest first
    sdk_closure: list[str] = field(default_factory=list)  # mistralai and what it requires, installed here
    seconds: float = 0.0

    @property
    def sdk_bytes(self) -> int:
        """The floor: what any Lambda that calls Mistral through the SDK has to ship."""
        return sum(size for name, size in self.packages if distribution_name(name) in self.sdk_closure)

    @property
    def added(self) -> list[str]:
        """Distributions the gateway ships beyond the SDK's closure."""
        return [name for name, _ in self.packages if distribution_name(name) not in self.sdk_closure]


def build_layer(layer_dir: Path) -> Layer:
    """`make -C layers/gateway build-GatewayLayer` into `layer_dir`, exactly as `sam build` runs it."""
    shutil.rmtree(layer_dir, ignore_errors=True)
    layer_dir.mkdir(parents=True)
    command = [
        "make",
        "--no-print-directory",
        "-C",
        str(ROOT / "layers" / "gateway"),
        "build-GatewayLayer",
        f"ARTIFACTS_DIR={layer_dir}",
        f"PIP={sys.executable} -m pip",
    ]
    env = {**os.environ, "PIP_TIMEOUT": "15", "PIP_RETRIES": "1"}  # fail fast without PyPI
    started = time.perf_counter()
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Layer(False, reason=f"build did not run: {error}")
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()] or ["no output"]
        cause = next((line for line in lines if line.startswith("ERROR")), lines[-1])
        return Layer(False, reason=f"build failed (PyPI unreachable?): {cause[:160]}")
    return measure_layer(layer_dir, seconds)


def measure_layer(layer_dir: Path, seconds: float = 0.0) -> Layer:
    """Sizes of a built layer (`layer_dir/python/...`): unzipped, zipped, by distribution, the SDK's closure."""
    python_dir = layer_dir / "python"
    packages, closure = package_sizes(python_dir), requirement_closure(python_dir, "mistralai")
    zipped = zipped_bytes(layer_dir, layer_dir.with_suffix(".zip"))
    return Layer(True, "", tree_bytes(python_dir), zipped, packages, sorted(closure), seconds)


def tree_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def zipped_bytes(layer_dir: Path, archive: Path) -> int:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(layer_dir.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(layer_dir))
    return archive.stat().st_size


def package_sizes(python_dir: Path) -> list[tuple[str, int]]:
    """Bytes per distribution (from each dist-info RECORD); files no RECORD claims count under their top dir."""
    sizes: dict[str, int] = {}
    claimed: set[Path] = set()
    for record in python_dir.glob("*.dist-info/RECORD"):
        name = record.parent.name.split("-")[0]
        for line in record.read_text().splitlines():
            path = (python_dir / line.split(",")[0]).resolve()
            if path.is_file() and path not in claimed:
                claimed.add(path)
                sizes[name] = sizes.get(name, 0) + path.stat().st_size
    for path in python_dir.rglob("*"):
        if path.is_file() and path.resolve() not in claimed:
            top = path.relative_to(python_dir).parts[0]
            sizes[top] = sizes.get(top, 0) + path.stat().st_size
    return sorted(sizes.items(), key=lambda item: -item[1])


def distribution_name(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def requirement_closure(python_dir: Path, root: str) -> set[str]:
    """`root` and everything it requires (extras left out), from the METADATA of the installed distributions."""
    requires: dict[str, list[str]] = {}
    for metadata in python_dir.glob("*.dist-info/METADATA"):
        needs = requires.setdefault(distribution_name(metadata.parent.name.split("-")[0]), [])
        for line in metadata.read_text(errors="replace").splitlines():
            if line.startswith("Requires-Dist:") and "extra ==" not in line:
                needs.append(
                    distribution_name(re.split(r"[\s<>=!~;\[(]", line.split(":", 1)[1].strip(), maxsplit=1)[0])
                )
    closure: set[str] = set()
    pending = [distribution_name(root)]
    while pending:
        name = pending.pop()
        if name in requires and name not in closure:
            closure.add(name)
            pending.extend(requires[name])
    return closure
