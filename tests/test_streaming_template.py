"""The streaming routes as API Gateway will run them: proven on SAM's own translation of template.yaml.

`ResponseTransferMode: STREAM` on a SAM event is silently ignored (SAM's spelling is RESPONSE_STREAM) and no
linter catches it, so the translated API definition is what these tests read.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway_dev.cloud.template import Template

# Completions, and the long answers that need StreamMaxMs rather than API Gateway's 29 s (issue 21).
STREAMED_ROUTES = (
    "/v1/chat/completions",
    "/v1/fim/completions",
    "/v1/batch/chat/completions",
    "/v1/agents/completions",
    "/v1/responses",
    "/v1/conversations",
    "/v1/conversations/{conversation_id}",
    "/v1/conversations/{conversation_id}/restart",
)


@pytest.fixture(scope="module")
def translated(template: Template) -> dict[str, Any]:
    return template.translated()


@pytest.fixture(scope="module")
def api_paths(translated: dict[str, Any]) -> dict[str, Any]:
    (api,) = [r for r in translated["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    return dict(api["Properties"]["Body"]["paths"])


def integration(api_paths: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    return dict(api_paths[path][method]["x-amazon-apigateway-integration"])


@pytest.mark.parametrize("path", STREAMED_ROUTES)
def test_completions_are_streamed_by_the_streaming_function(api_paths: dict[str, Any], path: str) -> None:
    # Given the translated template, when reading the completion routes' integrations
    spec = integration(api_paths, path, "post")
    # Then API Gateway streams the function's response, through the streaming invocation API
    assert spec["responseTransferMode"] == "STREAM"
    uri = spec["uri"]["Fn::Sub"]
    assert uri.endswith("/2021-11-15/functions/${StreamFunction.Arn}/response-streaming-invocations")
    # ...for as long as the StreamMaxMs parameter allows, under STREAM mode's 15-minute limit
    assert spec["timeoutInMillis"] == {"Ref": "StreamMaxMs"}


@pytest.mark.parametrize("path", STREAMED_ROUTES)
def test_streamed_routes_keep_the_caller_key_checks(api_paths: dict[str, Any], path: str) -> None:
    security = api_paths[path]["post"]["security"]
    assert {"CallerKeyAuthorizer": []} in security
    assert {"api_key": []} in security  # the usage plan still counts and throttles them


def test_every_other_route_stays_buffered_on_the_api_function(api_paths: dict[str, Any]) -> None:
    for path, methods in api_paths.items():
        for method, spec in methods.items():
            target = spec.get("x-amazon-apigateway-integration", {})
            if (path in STREAMED_ROUTES and method == "post") or target.get("type") != "aws_proxy":
                continue
            assert "responseTransferMode" not in target, (path, method)
            assert "${ApiFunction.Arn}/invocations" in target["uri"]["Fn::Sub"], (path, method)


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/v1/conversations", {"get"}),
        ("/v1/conversations/{conversation_id}", {"get", "delete"}),
        ("/v1/conversations/{conversation_id}/history", {"get"}),
        ("/v1/conversations/{conversation_id}/messages", {"get"}),
    ],
)
def test_conversation_resources_keep_their_other_methods_on_the_api_function(
    api_paths: dict[str, Any], path: str, methods: set[str]
) -> None:
    # Given explicit conversation resources (their POSTs stream), API Gateway would not fall back to
    # /v1/{proxy+} for a method they lack: each of Mistral's other methods is on the resource itself
    for method in methods:
        uri = integration(api_paths, path, method)["uri"]["Fn::Sub"]
        assert "${ApiFunction.Arn}/invocations" in uri, (path, method)
        assert {"CallerKeyAuthorizer": []} in api_paths[path][method]["security"]


def test_stream_cap_fits_api_gateway_and_lambda(template: Template) -> None:
    spec = template.document["Parameters"]["StreamMaxMs"]
    assert spec["MaxValue"] <= 900_000  # STREAM mode's integration limit
    assert int(template.function_setting("StreamFunction", "Timeout")) * 1000 >= spec["MaxValue"]


def test_the_streaming_function_runs_the_app_through_the_web_adapter(template: Template) -> None:
    properties = template.resources["StreamFunction"]["Properties"]
    layers = properties["Layers"]
    assert {"Ref": "GatewayLayer"} in layers
    (adapter,) = [layer["Fn::Sub"] for layer in layers if isinstance(layer, dict) and "Fn::Sub" in layer]
    assert adapter.startswith("arn:aws:lambda:${AWS::Region}:753240598075:layer:LambdaAdapterLayerArm64:")
    assert adapter.endswith(":${WebAdapterLayerVersion}")  # pinned, never "latest"
    env = template.function_environment("StreamFunction")
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["AWS_LWA_READINESS_CHECK_PATH"] not in ("/", "/health")  # must touch nothing remote
    assert properties["Handler"] == "run.sh"
    assert template.asgi_app("StreamFunction") is not None
    assert env["STREAM_MAX_MS"] == "600000" and env["STREAM_IDLE_TIMEOUT_MS"] == "60000"


def test_the_local_runner_sees_which_routes_stream(template: Template) -> None:
    streamed = {route.path for route in template.routes() if route.streams}
    assert streamed == set(STREAMED_ROUTES)
