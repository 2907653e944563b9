"""`make build`, second half: check what `sam build` produced before anyone deploys it.

- the layer holds the package and its pinned dependencies built for arm64 (no boto3: the runtime has it;
  no tests or caches), and fits well inside Lambda's limits;
- the streaming function holds its app, its launcher (executable) and Starlette + uvicorn, and its app
  answers the Web Adapter's readiness check;
- the built handler imports and answers an event in a Python 3.13 interpreter (pyenv's, when present). On
  an x86_64 machine the layer's compiled wheels (pydantic-core) cannot load, so the same pins are installed
  for this machine into a "twin" directory and the built handler and package are imported on top of it.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
LAYER_LIMIT_MB = 25  # our own target (Lambda allows 250 MB unzipped for function + layers)
SMOKE = """
import json, sys
import app
event = {"resource": "/openapi.json", "path": "/openapi.json", "httpMethod": "GET", "headers": {},
         "multiValueHeaders": {}, "requestContext": {"requestId": "build-check", "stage": "prod"}, "body": None}
class Context:
    function_name = "build-check"; memory_limit_in_mb = 512; aws_request_id = "build-check"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:build-check"
    def get_remaining_time_in_millis(self): return 29000
result = app.lambda_handler(event, Context())
assert result["statusCode"] == 200, result
assert "/v1/chat/completions" in json.loads(result["body"])["paths"]
print(sys.version.split()[0])
"""
# The streaming app answering the Web Adapter's readiness check, through the ASGI interface uvicorn uses.
STREAM_SMOKE = """
import asyncio, sys
import app
sent = []
async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}
async def send(message):
    sent.append(message)
scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "path": "/ready",
         "raw_path": b"/ready", "query_string": b"", "headers": [], "scheme": "http", "server": ("127.0.0.1", 8080)}
asyncio.run(app.app(scope, receive, send))
assert sent[0]["status"] == 200, sent
print(sys.version.split()[0])
"""


def megabytes(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1_000_000


def zipped_megabytes(path: Path) -> float:
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in path.rglob("*"):
                if file.is_file():
                    archive.write(file, file.relative_to(path))
        return handle.tell() / 1_000_000


def python313() -> str | None:
    found = shutil.which("python3.13")
    candidates = [found] if found else []
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13*/bin/python3.13")))
    for candidate in candidates:
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True)
        if probe.returncode == 0:
            return candidate
    return None


def twin_site(python: str, build_dir: Path) -> Path:
    """The layer's pins (plus boto3, as the runtime has) built for this machine, cached by requirements."""
    requirements = ROOT / "layers" / "gateway" / "requirements.txt"
    constraints = ROOT / "layers" / "gateway" / "constraints.txt"
    pins = requirements.read_text() + constraints.read_text()
    twin = build_dir.parent / "check-twin"
    stamp = twin / ".requirements"
    if stamp.exists() and stamp.read_text() == pins:
        return twin
    shutil.rmtree(twin, ignore_errors=True)
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(twin),
         "-r", str(requirements), "-c", str(constraints), "boto3"],
        check=True,
    )  # fmt: skip
    stamp.write_text(pins)
    return twin


def import_check(build_dir: Path, layer: Path) -> str:
    python = python313()
    if python is None:
        return "skipped: no Python 3.13 interpreter on this machine"
    function = build_dir / "ApiFunction"
    if platform.machine() in ("aarch64", "arm64"):
        path = [function, layer]
    else:
        # Only the packages with compiled code come from a twin built for this machine; every other module
        # (sourceless .pyc included) is imported from the built layer itself.
        twin = twin_site(python, build_dir)
        overlay = build_dir.parent / "check-overlay"
        shutil.rmtree(overlay, ignore_errors=True)
        overlay.mkdir()
        for package in {p.relative_to(layer).parts[0] for p in layer.rglob("*.so")}:
            for name in (package, *[d.name for d in twin.glob(f"{package}-*.dist-info")]):
                if (twin / name).exists():
                    shutil.copytree(twin / name, overlay / name)
        path = [function, overlay, layer, twin]  # twin last: boto3, which the runtime provides
    answered = []
    for logical_id, smoke, what in (
        ("ApiFunction", SMOKE, "GET /openapi.json"),
        ("StreamFunction", STREAM_SMOKE, "GET /ready"),
    ):
        version = _smoke(python, build_dir, [build_dir / logical_id, *path[1:]], logical_id, smoke)
        answered.append(f"{logical_id} answered {what}")
    return f"ok: {', '.join(answered)} in Python {version}"


def _smoke(python: str, build_dir: Path, path: list[Path], logical_id: str, smoke: str) -> str:
    from gateway_dev.cloud.template import Template

    # The function's environment as the template sets it (Powertools service, namespace...), no real AWS.
    env = {**os.environ, **Template().function_environment(logical_id), "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run([python, "-I", "-c", f"import sys; sys.path[:0] = {[str(p) for p in path]!r}\n" + smoke],
                            capture_output=True, text=True, env=env, cwd=build_dir)  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"the built {logical_id} does not import/answer in {python}:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def stream_function_problems(function: Path) -> list[str]:
    """What is wrong with the built streaming function (empty when it is fit to deploy)."""
    problems = [f"{name} is missing from {function.name}" for name in ("app.py", "run.sh", "starlette", "uvicorn")
                if not (function / name).exists()]  # fmt: skip
    launcher = function / "run.sh"
    if launcher.exists() and not os.access(launcher, os.X_OK):
        problems.append("run.sh is not executable: the Web Adapter could not start the app")
    problems += [
        f"{name} is bundled twice (the layer has it)" for name in ("anyio", "boto3") if (function / name).exists()
    ]
    return problems


def layer_problems(layer: Path) -> list[str]:
    """What is wrong with a built layer directory (empty when it is fit to deploy)."""
    if not (layer / "mistral_gateway").is_dir():
        return [f"{layer} has no mistral_gateway: did `sam build` run?"]
    problems = [
        f"{name} is in the layer (the runtime provides it)" for name in RUNTIME_PROVIDED if (layer / name).exists()
    ]
    leftovers = [p for p in layer.rglob("*") if p.name == "tests" and p.is_dir()]
    problems += [f"dead weight in the layer: {p.relative_to(layer)}" for p in leftovers[:5]]
    if not any("aarch64" in p.name for p in layer.rglob("*.so")):
        problems.append("no aarch64 binaries in the layer: was it built for arm64?")
    stale = [p for p in layer.rglob("*.pyc") if "cpython-" in p.name and "cpython-313" not in p.name]
    problems += [f"bytecode for the wrong Python: {p.relative_to(layer)}" for p in stale[:5]]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("build_dir", nargs="?", default=".aws-sam/build")
    args = parser.parse_args(argv)
    build_dir = Path(args.build_dir).resolve()
    layer = build_dir / "GatewayLayer" / "python"
    problems = layer_problems(layer) + stream_function_problems(build_dir / "StreamFunction")
    if problems:
        raise SystemExit("build check failed:\n  " + "\n  ".join(problems))
    arm_binaries = [p.name for p in layer.rglob("*.so") if "aarch64" in p.name]
    sizes = {
        "layer_unzipped_mb": round(megabytes(layer), 1),
        "layer_zipped_mb": round(zipped_megabytes(layer), 1),
        "api_function_kb": round(megabytes(build_dir / "ApiFunction") * 1000, 1),
        "stream_function_kb": round(megabytes(build_dir / "StreamFunction") * 1000, 1),
        "authorizer_function_kb": round(megabytes(build_dir / "AuthorizerFunction") * 1000, 1),
    }
    if sizes["layer_unzipped_mb"] > LAYER_LIMIT_MB:
        raise SystemExit(f"the layer is {sizes['layer_unzipped_mb']} MB unzipped, over our {LAYER_LIMIT_MB} MB target")
    report = {**sizes, "no_boto3": True, "arm64_binaries": len(arm_binaries), "import": import_check(build_dir, layer)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
