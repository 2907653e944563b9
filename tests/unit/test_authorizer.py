"""The caller-key authorizer: Bearer or x-api-key handed to the usage plan; nothing else gets through."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from gateway_dev.template import ROOT

METHOD_ARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/POST/v1/chat/completions"


@pytest.fixture(scope="module")
def authorizer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_authorizer_app", ROOT / "functions/authorizer/app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer sk-caller"},
        {"authorization": "bearer sk-caller"},
        {"x-api-key": "sk-caller"},
        {"X-Api-Key": "sk-caller", "Authorization": "Bearer other"},
    ],
)
def test_the_key_goes_to_the_usage_plan(authorizer: ModuleType, headers: dict[str, str]) -> None:
    result = authorizer.lambda_handler({"headers": headers, "methodArn": METHOD_ARN}, None)
    assert result["usageIdentifierKey"] == "sk-caller"
    assert result["principalId"].startswith("key-") and "sk-caller" not in result["principalId"]
    statement = result["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/*/*"


@pytest.mark.parametrize(
    "headers", [None, {}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}, {"x-api-key": " "}]
)
def test_no_key_is_401(authorizer: ModuleType, headers: dict[str, str] | None) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.lambda_handler({"headers": headers, "methodArn": METHOD_ARN}, None)


def test_two_keys_get_two_principals(authorizer: ModuleType) -> None:
    first = authorizer.lambda_handler({"headers": {"x-api-key": "a"}, "methodArn": METHOD_ARN}, None)
    second = authorizer.lambda_handler({"headers": {"x-api-key": "b"}, "methodArn": METHOD_ARN}, None)
    assert first["principalId"] != second["principalId"]
