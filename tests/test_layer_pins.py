"""The layer ships what the tests run against: layers/gateway/requirements.txt and constraints.txt pin every
package the layer installs, and the venv `make test` runs in holds exactly those versions."""

from __future__ import annotations

from distributions import closure, installed, requirement_lines
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from gateway_dev.cloud.template import ROOT

LAYER = ROOT / "layers" / "gateway"
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer"}  # the Lambda runtime's; the layer's Makefile drops them
# The layer's platform (template.yaml: arm64, python3.13), for the dependencies' environment markers.
LAMBDA = {
    "python_version": "3.13",
    "python_full_version": "3.13.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "aarch64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def requirements(name: str) -> list[Requirement]:
    return [Requirement(line) for line in requirement_lines(LAYER / name) if not line.startswith("-")]


def pinned() -> dict[str, str]:
    """{package: version} for every `==` pin of the layer."""
    pins: dict[str, str] = {}
    for requirement in requirements("requirements.txt") + requirements("constraints.txt"):
        for specifier in requirement.specifier:
            if specifier.operator == "==":
                pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def layer_packages() -> set[str]:
    """The packages installing requirements.txt on Lambda's platform pulls in, read from the venv's metadata."""
    roots = [(requirement.name, frozenset(requirement.extras)) for requirement in requirements("requirements.txt")]
    return closure(roots, LAMBDA)


def test_the_venv_holds_every_version_the_layer_pins() -> None:
    # Given the layer's pins; then the venv the tests run in has each at exactly that version
    drifted = {name: (version, installed(name)) for name, version in pinned().items() if installed(name) != version}
    assert drifted == {}


def test_every_package_the_layer_installs_is_pinned() -> None:
    # Given what installing the layer's requirements pulls in on Lambda's platform
    packages = layer_packages()
    # Then each is pinned (or the runtime's own), so no build ships a version the tests never ran
    assert packages - set(pinned()) - RUNTIME_PROVIDED == set()
    assert {"mistralai", "pydantic", "pydantic-core", "httpx2"} <= packages  # the walk found the tree
