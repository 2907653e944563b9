"""The build check and the after-deploy steps (the real `make build` needs PyPI, so it is not a test)."""

from __future__ import annotations

from pathlib import Path

from gateway_dev.ops.after_deploy import instructions
from gateway_dev.ops.build_check import layer_problems


def make_layer(root: Path, *names: str) -> Path:
    layer = root / "python"
    for name in names:
        path = layer / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch() if "." in path.name else path.mkdir(exist_ok=True)
    return layer


def test_a_good_layer_has_no_problems(tmp_path: Path) -> None:
    layer = make_layer(tmp_path, "mistral_gateway", "pydantic_core/_core.cpython-313-aarch64-linux-gnu.so")
    assert layer_problems(layer) == []


def test_boto3_dead_weight_and_the_wrong_architecture_are_caught(tmp_path: Path) -> None:
    layer = make_layer(
        tmp_path,
        "mistral_gateway",
        "boto3",
        "botocore",
        "httpx2/tests",
        "pydantic_core/_core.cpython-313-x86_64-linux-gnu.so",
    )
    problems = "\n".join(layer_problems(layer))
    assert "boto3 is in the layer" in problems and "botocore is in the layer" in problems
    assert "dead weight in the layer: httpx2/tests" in problems
    assert "no aarch64 binaries" in problems


def test_bytecode_for_another_python_is_caught(tmp_path: Path) -> None:
    layer = make_layer(
        tmp_path,
        "mistral_gateway/__pycache__/cache.cpython-311.pyc",
        "pydantic_core/_core.cpython-313-aarch64-linux-gnu.so",
        "pydantic/main.pyc",  # sourceless, next to where main.py was: fine
    )
    assert layer_problems(layer) == ["bytecode for the wrong Python: mistral_gateway/__pycache__/cache.cpython-311.pyc"]


def test_an_unbuilt_layer_says_so(tmp_path: Path) -> None:
    assert "did `sam build` run?" in layer_problems(tmp_path / "python")[0]


def test_after_deploy_fills_in_the_stacks_names() -> None:
    text = instructions(
        {
            "ApiUrl": "https://abc.execute-api.eu-west-1.amazonaws.com/prod",
            "MistralSecretArn": "arn:aws:secretsmanager:eu-west-1:1:secret:gw/mistral-api-key-x",
            "UsagePlanId": "plan123",
            "QuotaTableName": "gw-QuotaTable-1",
        },
        stack="gw",
    )
    assert "--secret-id 'arn:aws:secretsmanager:eu-west-1:1:secret:gw/mistral-api-key-x'" in text
    assert "usage plan plan123" in text and "table gw-QuotaTable-1" in text
    assert "mistral-gateway keys --stack gw create my-app" in text and 'ARGS="--stack gw"' in text
    assert "curl https://abc.execute-api.eu-west-1.amazonaws.com/prod/v1/chat/completions" in text


def test_the_streaming_function_needs_its_app_an_executable_launcher_and_no_duplicates(tmp_path: Path) -> None:
    from gateway_dev.ops.build_check import stream_function_problems

    function = tmp_path / "StreamFunction"
    for name in ("starlette", "uvicorn"):
        (function / name).mkdir(parents=True)
    (function / "app.py").touch()
    launcher = function / "run.sh"
    launcher.touch()
    assert stream_function_problems(function) == ["run.sh is not executable: the Web Adapter could not start the app"]
    launcher.chmod(0o755)
    (function / "anyio").mkdir()
    assert stream_function_problems(function) == ["anyio is bundled twice (the layer has it)"]
