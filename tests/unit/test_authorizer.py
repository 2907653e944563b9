"""The caller-key authorizer: Bearer or x-api-key handed to the usage plan; nothing else gets through."""

from __future__ import annotations

from types import ModuleType

import pytest

METHOD_ARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/POST/v1/chat/completions"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer sk-caller"},
        {"authorization": "bearer sk-caller"},
        {"x-api-key": "sk-caller"},
        {"X-Api-Key": "other", "Authorization": "Bearer sk-caller"},  # Authorization, when sent, is all it reads
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
    "headers",
    [
        None,
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
        {"x-api-key": " "},
        {"Authorization": "Basic abc", "x-api-key": "sk-caller"},  # never falls back past a sent Authorization
        {"Authorization": "sk-caller", "x-api-key": "sk-caller"},
    ],
)
def test_no_key_is_401(authorizer: ModuleType, headers: dict[str, str] | None) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.lambda_handler({"headers": headers, "methodArn": METHOD_ARN}, None)


def test_two_keys_get_two_principals(authorizer: ModuleType) -> None:
    first = authorizer.lambda_handler({"headers": {"x-api-key": "a"}, "methodArn": METHOD_ARN}, None)
    second = authorizer.lambda_handler({"headers": {"x-api-key": "b"}, "methodArn": METHOD_ARN}, None)
    assert first["principalId"] != second["principalId"]
