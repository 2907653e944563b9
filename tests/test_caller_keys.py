"""Caller keys in the cloud, proved on the template as SAM translates it: API Gateway caches the authorizer's
decision by its identity sources, so the authorizer must decide on exactly those whenever they are present
(no alias can form), and every refusal API Gateway makes itself is a 401 in Mistral's error shape."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_dev.cloud.template import Template

METHOD_ARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/POST/v1/chat/completions"


def rest_api(parameters: dict[str, str] | None = None) -> dict[str, Any]:
    resources = Template(parameters=parameters).translated()["Resources"]
    (api,) = [r for r in resources.values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    return dict(api["Properties"]["Body"])


@pytest.fixture(scope="module")
def cloud() -> dict[str, Any]:
    return rest_api()


def identity_headers(api: dict[str, Any]) -> list[str]:
    source = api["securityDefinitions"]["CallerKeyAuthorizer"]["x-amazon-apigateway-authorizer"]["identitySource"]
    return [part.strip().removeprefix("method.request.header.") for part in source.split(",")]


def decision(authorizer: ModuleType, headers: dict[str, str]) -> str | None:
    try:
        return str(authorizer.lambda_handler({"headers": headers, "methodArn": METHOD_ARN}, None)["usageIdentifierKey"])
    except authorizer.Unauthorized:
        return None


def test_the_decision_is_cached_by_authorization_for_the_parameters_time(cloud) -> None:
    settings_ = cloud["securityDefinitions"]["CallerKeyAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert identity_headers(cloud) == ["Authorization"]
    assert settings_["type"] == "request" and int(settings_["authorizerResultTtlInSeconds"]) == 300
    uncached = rest_api({"AuthorizerCacheSeconds": "0"})["securityDefinitions"]["CallerKeyAuthorizer"]
    assert int(uncached["x-amazon-apigateway-authorizer"]["authorizerResultTtlInSeconds"]) == 0


header_values = st.sampled_from(["", " ", "Bearer", "Bearer ", "Bearer key-a", "bearer key-a", "Bearer key-b",
                                 "Basic key-a", "key-a", "Bearer undefined"])  # fmt: skip
other_headers = st.dictionaries(
    st.sampled_from(["x-api-key", "X-Api-Key", "x-caller"]), st.sampled_from(["key-a", "key-b", ""])
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(identity=header_values, first=other_headers, second=other_headers)
def test_requests_that_share_the_cache_key_get_the_same_decision(cloud, authorizer, identity, first, second) -> None:
    # API Gateway calls the authorizer only when every identity source is present, and caches by their values
    if not identity.strip():
        return
    identities = {name: identity for name in identity_headers(cloud)}
    assert decision(authorizer, {**first, **identities}) == decision(authorizer, {**second, **identities})


def test_a_junk_authorization_beside_someones_key_is_refused_not_aliased(authorizer) -> None:
    assert decision(authorizer, {"Authorization": "Bearer undefined", "x-api-key": "key-a"}) == "undefined"
    assert decision(authorizer, {"Authorization": "Basic abc", "x-api-key": "key-a"}) is None
    assert decision(authorizer, {"x-api-key": "key-a"}) == "key-a"  # only reachable with caching off


@pytest.mark.parametrize("response_type", ["UNAUTHORIZED", "INVALID_API_KEY", "ACCESS_DENIED"])
def test_api_gateways_own_key_refusals_are_401s_in_mistrals_shape(cloud, response_type) -> None:
    response = cloud["x-amazon-apigateway-gateway-responses"][response_type]
    assert response["statusCode"] == "401"
    body = json.loads(response["responseTemplates"]["application/json"])
    assert body["object"] == "error" and body["type"] == "authentication_error" and body["message"]
    assert set(body) == {"object", "message", "type", "param", "code"}
