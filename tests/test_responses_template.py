"""The stored responses' table and routes as the template defines them (and SAM translates them)."""

from __future__ import annotations

from typing import Any

from gateway_dev.cloud.template import Template


def test_the_responses_table_is_what_the_store_uses(template: Template) -> None:
    props = template.properties("ResponsesTable")
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    # DynamoDB deletes expired items itself (the code also refuses them on read: deletion is lazy)
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    # Callers' conversations outlive a replaced or deleted stack, as the quota table does
    assert template.resources["ResponsesTable"]["DeletionPolicy"] == "Retain"
    for function in ("ApiFunction", "StreamFunction"):
        environment = template.function_environment(function)
        assert environment["RESPONSES_TABLE_NAME"] == template.physical_name("ResponsesTable")
        assert environment["RESPONSES_TTL_SECONDS"] == "2592000"


def test_stored_response_routes_are_explicit_resources_on_the_api_function(template: Template) -> None:
    translated: dict[str, Any] = template.translated()
    (api,) = [r for r in translated["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    paths = api["Properties"]["Body"]["paths"]
    expected = {
        ("/v1/responses/{response_id}", "get"),
        ("/v1/responses/{response_id}", "delete"),
        ("/v1/responses/{response_id}/input_items", "get"),
        ("/v1/responses/input_tokens", "post"),
    }
    for path, method in expected:
        # An explicit resource wins over /v1/{proxy+} in API Gateway: these never reach the pass-through table
        target = paths[path][method]["x-amazon-apigateway-integration"]
        assert "${ApiFunction.Arn}/invocations" in target["uri"]["Fn::Sub"]
        assert {"CallerKeyAuthorizer": []} in paths[path][method]["security"]
    assert "post" in paths["/v1/responses"]
