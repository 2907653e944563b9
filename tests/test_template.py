"""template.yaml: valid, and holding every resource, name and permission the code relies on."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from gateway_dev.cloud.template import Template
from mistral_gateway.platform.config import Settings

# Environment variables the code reads (config.Settings.from_env) -> the template must set them.
SETTINGS_VARIABLES = {
    "CACHE_TABLE_NAME",
    "MISTRAL_SECRET_ID",
    "MISTRAL_SERVER_URL",
    "ALLOWED_MODELS",
    "CACHE_TTL_SECONDS",
    "CACHE_SCOPE",
    "REQUEST_DEADLINE_MS",
    "UPSTREAM_TIMEOUT_MS",
    "UPSTREAM_MAX_ATTEMPTS",
    "MAX_BODY_BYTES",
    "LOG_PROMPTS",
    "STALE_IF_ERROR_SECONDS",
    "SINGLE_FLIGHT_WAIT_MS",
    "CIRCUIT_FAILURE_THRESHOLD",
    "CIRCUIT_COOLDOWN_SECONDS",
    "QUOTA_TABLE_NAME",
    "QUOTA_COUNT_HITS",
    "MODEL_PRICES",
    "FALLBACK_CHAINS",
    "SELF_HOSTED_SERVER_URL",
    "SELF_HOSTED_SECRET_ID",
    "ACCOUNT_ROUTES",
    "LEDGER_TABLE_NAME",
    "CORS_ALLOW_ORIGIN",
}


def test_cfn_lint_finds_nothing(template: Template) -> None:
    from cfnlint.api import lint_file

    matches = lint_file(template.path)
    assert [str(match) for match in matches] == []


def test_the_api_function_runs_python_3_13_on_arm64_with_the_layer(template: Template) -> None:
    assert template.function_setting("ApiFunction", "Runtime") == "python3.13"
    assert template.function_setting("ApiFunction", "Architectures") == ["arm64"]
    layer = template.resources["GatewayLayer"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert template.resources["ApiFunction"]["Properties"]["Layers"] == [{"Ref": "GatewayLayer"}]


def test_the_function_gets_every_setting_the_code_reads(template: Template) -> None:
    env = template.function_environment("ApiFunction")
    assert set(env) >= SETTINGS_VARIABLES
    for name in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"):
        assert env[name]
    assert env["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"  # events carry caller keys
    # The key itself never travels in the environment: only the secret's id does.
    assert not any("API_KEY" in name for name in env)


def test_template_defaults_match_the_codes_defaults(template: Template) -> None:
    defaults = {field.name: field.default for field in dataclasses.fields(Settings)}
    params = template.parameters
    assert int(params["CacheTtlSeconds"]) == defaults["cache_ttl_seconds"]
    assert int(params["RequestDeadlineMs"]) == defaults["request_deadline_ms"]
    assert int(params["UpstreamTimeoutMs"]) == defaults["upstream_timeout_ms"]
    assert int(params["UpstreamMaxAttempts"]) == defaults["upstream_max_attempts"]
    assert int(params["MaxBodyBytes"]) == defaults["max_body_bytes"]
    assert params["MistralServerUrl"] == defaults["server_url"]
    # The deadline leaves time under API Gateway's 29 s and the function's own timeout.
    assert int(params["RequestDeadlineMs"]) < 29_000
    assert int(template.function_setting("ApiFunction", "Timeout")) * 1000 > int(params["RequestDeadlineMs"])


def test_the_cache_table_is_what_the_cache_code_uses(template: Template) -> None:
    props = template.properties("CacheTable")
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": False}
    assert Template(parameters={"EnablePointInTimeRecovery": "true"}).properties("CacheTable")[
        "PointInTimeRecoverySpecification"
    ] == {"PointInTimeRecoveryEnabled": True}


def _statements(template: Template) -> list[dict[str, Any]]:
    # Both gateway functions hold the one shared policy, and nothing else.
    for function in ("ApiFunction", "StreamFunction"):
        assert template.resources[function]["Properties"]["Policies"] == [{"Ref": "GatewayAccessPolicy"}]
    statements = template.resources["GatewayAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    # A conditional statement (only with a self-hosted key) is checked as if its condition held.
    return [s["Fn::If"][1] if "Fn::If" in s else s for s in statements]


def test_permissions_are_least_privilege(template: Template) -> None:
    statements = _statements(template)
    actions = {
        action for s in statements for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert actions == {
        "secretsmanager:GetSecretValue",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",  # stored responses, the ledger's forgotten resources, a released lease
        "dynamodb:BatchGetItem",
        "dynamodb:Query",  # the ownership ledger's by_owner index (lists)
    }
    for statement in statements:
        assert statement["Resource"] != "*"
    by_sid = {s["Sid"]: s for s in statements}
    assert by_sid["UseTheAnswerCache"]["Resource"] == {"Fn::GetAtt": ["CacheTable", "Arn"]}
    assert by_sid["CountCallerBudgets"]["Resource"] == {"Fn::GetAtt": ["QuotaTable", "Arn"]}
    assert "dynamodb:PutItem" not in by_sid["CountCallerBudgets"]["Action"]  # limits are the operator's to write
    # Limits are read in batches; GetItem stays for one release only, for the code an update replaces (the policy
    # changes before the functions do): the release after, drop it here and in template.yaml together.
    assert sorted(by_sid["CountCallerBudgets"]["Action"]) == [
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",  # legacy: the code deployed before the batched limits read
        "dynamodb:UpdateItem",
    ]
    # Deleting is for stored responses (DELETE /v1/responses/{id}), the ledger's forgotten resources and a refused
    # request's single-flight lease, each on its own table only
    assert by_sid["KeepStoredResponses"]["Resource"] == {"Fn::GetAtt": ["ResponsesTable", "Arn"]}
    assert by_sid["RecordAndCheckOwnership"]["Resource"] == [
        {"Fn::GetAtt": ["OwnershipTable", "Arn"]},
        {"Fn::Sub": "${OwnershipTable.Arn}/index/by_owner"},
    ]
    deleters = [s["Sid"] for s in statements if "dynamodb:DeleteItem" in s["Action"]]
    assert sorted(deleters) == ["KeepStoredResponses", "RecordAndCheckOwnership", "UseTheAnswerCache"]
    assert "dynamodb:DeleteItem" not in by_sid["CountCallerBudgets"]["Action"]
    assert by_sid["ReadTheMistralKey"]["Resource"] == {
        "Fn::If": ["CreateSecret", {"Ref": "MistralApiKeySecret"}, {"Ref": "ExistingSecretArn"}]
    }
    assert by_sid["ReadTheSelfHostedKey"]["Resource"] == {"Ref": "SelfHostedSecretArn"}


@pytest.mark.parametrize(("existing", "created"), [("", True), ("arn:aws:secretsmanager:r:1:secret:k", False)])
def test_the_secret_is_created_or_taken_by_arn(existing: str, created: bool) -> None:
    template = Template(parameters={"ExistingSecretArn": existing})
    assert template.is_created("MistralApiKeySecret") is created
    secret_id = template.function_environment("ApiFunction")["MISTRAL_SECRET_ID"]
    assert secret_id == ("mistral-gateway/mistral-api-key" if created else existing)


def test_every_route_the_code_serves_is_an_api_event(template: Template) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_template_check_app", template.path.parent / "functions/api/app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    served = module.app.routes
    # The buffered function also answers the streamed routes (for `sam local invoke` with events/, which
    # cannot stream); in the API they go to the streaming function.
    template_routes = [r for r in template.routes() if r.function == "ApiFunction" or r.streams]
    sample = {r: re.sub(r"\{[^}]+\}", "x", r.path) for r in template_routes}
    for route in served:
        assert any(r.method == route.method and route.matches(sample[r]) for r in template_routes), route.rule
    for route in template_routes:
        assert any(s.method == route.method and s.matches(sample[route]) for s in served), route


def test_outputs_give_the_url_table_and_secret(template: Template) -> None:
    outputs = template.document["Outputs"]
    assert {"ApiUrl", "CacheTableName", "MistralSecretArn"} <= set(outputs)


def test_caller_keys_go_through_the_authorizer_and_a_usage_plan(template: Template) -> None:
    api = template.properties("GatewayApi")
    assert api["ApiKeySourceType"] == "AUTHORIZER"
    auth = api["Auth"]
    assert auth["DefaultAuthorizer"] == "CallerKeyAuthorizer" and auth["ApiKeyRequired"] is True
    authorizer = auth["Authorizers"]["CallerKeyAuthorizer"]
    assert authorizer["FunctionPayloadType"] == "REQUEST"
    assert int(authorizer["Identity"]["ReauthorizeEvery"]) == 300
    plan = auth["UsagePlan"]
    assert plan["CreateUsagePlan"] == "PER_API"
    assert {"RateLimit", "BurstLimit"} <= set(plan["Throttle"]) and plan["Quota"]["Period"] == "DAY"


def test_only_health_and_docs_are_public(template: Template) -> None:
    public = {route.path for route in template.routes() if route.public}
    assert public == {"/health", "/openapi.json", "/docs"}


# --- dashboard and alarms: only metrics the code emits ----------------------------------------------------

NAMESPACE = "MistralGateway"


def _dashboard(template: Template) -> dict[str, Any]:
    import json

    return json.loads(template.resolve(template.properties("GatewayDashboard")["DashboardBody"]))


def _our_metric_names(template: Template) -> set[str]:
    """Every metric of our namespace that the dashboard or an alarm refers to, SEARCH expressions included."""
    names: set[str] = set()
    for widget in _dashboard(template)["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if isinstance(row[0], dict):
                names |= set(re.findall(r'MetricName="(\w+)"', row[0]["expression"]))
                assert f"{{{NAMESPACE}," in row[0]["expression"] or "SEARCH" not in row[0]["expression"]
            elif row[0] == NAMESPACE:
                names.add(row[1])
    for logical_id in template.resources_of_type("AWS::CloudWatch::Alarm"):
        props = template.properties(logical_id)
        stats = [props] + [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        names |= {stat["MetricName"] for stat in stats if stat.get("Namespace") == NAMESPACE}
    return names


def test_the_dashboard_and_alarms_use_only_metrics_the_code_emits(template: Template) -> None:
    from mistral_gateway.platform.observability import EMITTED_METRICS

    referenced = _our_metric_names(template)
    assert referenced <= EMITTED_METRICS, f"not emitted by the code: {sorted(referenced - EMITTED_METRICS)}"
    # and what an operator needs at a glance is on it
    assert {"CacheHit", "CacheMiss", "UpstreamLatency", "UpstreamErrors", "TokensServedFromCache",
            "EstimatedCostSavedUSD", "QuotaRejections", "ColdStart", "CircuitOpened"} <= referenced  # fmt: skip


def test_our_metrics_are_queried_with_the_dimensions_the_code_emits(template: Template) -> None:
    env = template.function_environment("ApiFunction")
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE
    for widget in _dashboard(template)["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if row[0] == NAMESPACE:
                assert row[2:4] == ["service", env["POWERTOOLS_SERVICE_NAME"]], row


def test_alarms_cover_errors_latency_circuit_and_throttles_and_notify_the_topic(template: Template) -> None:
    alarms = template.resources_of_type("AWS::CloudWatch::Alarm")
    assert {"ServerErrorRateAlarm", "UpstreamErrorRateAlarm", "CircuitOpenAlarm", "LatencyP95Alarm",
            "CacheThrottleAlarm"} <= set(alarms)  # fmt: skip
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == {
            "Fn::If": ["NotifyAlarms", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }


# --- what API Gateway gets: the template as SAM translates it (offline, samtranslator) -------------------


@pytest.fixture(scope="module")
def translated(template: Template) -> dict[str, Any]:
    return template.translated()


def _paths(translated: dict[str, Any]) -> dict[str, Any]:
    return dict(translated["Resources"]["GatewayApi"]["Properties"]["Body"]["paths"])


def test_every_path_answers_a_preflight_without_a_key(translated: dict[str, Any]) -> None:
    from mistral_gateway.edge.cors import allowed_request_headers

    paths = _paths(translated)
    assert "/v1/{proxy+}" in paths and "/v1/models/{model_id}" in paths
    for path, operations in paths.items():
        preflight = operations["options"]
        assert preflight["x-amazon-apigateway-integration"]["type"] == "mock", path
        assert not preflight.get("security"), f"{path}: a preflight carries no key, so it must not need one"
        headers = preflight["x-amazon-apigateway-integration"]["responses"]["default"]["responseParameters"]
        assert headers["method.response.header.Access-Control-Allow-Origin"] == {"Fn::Sub": "'${CorsAllowOrigin}'"}
        allowed = headers["method.response.header.Access-Control-Allow-Headers"].strip("'").split(",")
        assert sorted(allowed) == allowed_request_headers()  # the function's CORSConfig allows the same
        methods = set(headers["method.response.header.Access-Control-Allow-Methods"].strip("'").split(","))
        assert {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} <= methods


def test_the_proxy_route_takes_every_method_behind_the_key_and_exact_routes_stay(translated: dict[str, Any]) -> None:
    paths = _paths(translated)
    assert set(paths["/v1/{proxy+}"]) == {"get", "post", "put", "patch", "delete", "options"}
    for method in ("get", "post", "put", "patch", "delete"):
        assert paths["/v1/{proxy+}"][method]["security"], method  # authorizer and API key
    assert set(paths["/v1/chat/completions"]) == {"post", "options"}


def test_uploads_and_downloads_are_binary_and_gateway_errors_carry_cors(translated: dict[str, Any]) -> None:
    body = translated["Resources"]["GatewayApi"]["Properties"]["Body"]
    assert {"multipart/form-data", "application/octet-stream", "audio/*"} <= set(
        body["x-amazon-apigateway-binary-media-types"]
    )
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX"):
        headers = body["x-amazon-apigateway-gateway-responses"][kind]["responseParameters"]
        assert headers["gatewayresponse.header.Access-Control-Allow-Origin"] == {"Fn::Sub": "'${CorsAllowOrigin}'"}


def test_account_routes_are_owned_unless_the_operator_says_otherwise(template: Template) -> None:
    spec = template.document["Parameters"]["AccountRoutes"]
    assert spec["Default"] == "owned" and spec["AllowedValues"] == ["owned", "shared", "off"]
    assert template.function_environment("ApiFunction")["ACCOUNT_ROUTES"] == "owned"
    shared = Template(parameters={"AccountRoutes": "shared"})
    assert shared.function_environment("ApiFunction")["ACCOUNT_ROUTES"] == "shared"
    assert "EnableAccountEndpoints" not in template.document["Parameters"]


def test_the_ownership_ledger_is_a_pay_per_request_table_the_functions_may_use_and_no_more(template: Template) -> None:
    props = template.properties("OwnershipTable")
    assert props["BillingMode"] == "PAY_PER_REQUEST" and props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"}
    ]
    (index,) = props["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by_owner" and [k["AttributeName"] for k in index["KeySchema"]] == ["scope", "created"]
    assert template.resources["OwnershipTable"]["DeletionPolicy"] == "Retain"
    assert template.function_environment("ApiFunction")["LEDGER_TABLE_NAME"] == template.physical_name("OwnershipTable")
    statements = template.resources["GatewayAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    ledger = next(s for s in statements if s.get("Sid") == "RecordAndCheckOwnership")
    assert sorted(ledger["Action"]) == [
        "dynamodb:BatchGetItem",
        "dynamodb:DeleteItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
    ]
    assert ledger["Resource"] == [
        {"Fn::GetAtt": ["OwnershipTable", "Arn"]},
        {"Fn::Sub": "${OwnershipTable.Arn}/index/by_owner"},
    ]


def test_the_permissions_audit_refuses_what_the_functions_role_does_not_grant(template: Template) -> None:
    # The audit every gateway test ends with (tests/aws_permissions.py), on calls the role does and does not allow
    import aws_permissions

    cache, quota = template.physical_name("CacheTable"), template.physical_name("QuotaTable")
    allowed = [
        ("dynamodb:UpdateItem", {"TableName": cache}),
        ("dynamodb:BatchGetItem", {"RequestItems": {quota: {}}}),
        ("secretsmanager:GetSecretValue", {"SecretId": template.physical_name("MistralApiKeySecret")}),
        ("dynamodb:TransactWriteItems", {"TransactItems": [{"Update": {"TableName": quota}}]}),  # item by item
    ]
    aws_permissions.audit_permissions(template, allowed)
    for call in [
        ("dynamodb:Scan", {"TableName": cache}),  # an operation the role lacks
        ("dynamodb:Scan", {"TableName": quota}),  # no reading the whole quota table
        ("dynamodb:ListTables", {}),  # a call naming no resource needs a grant on every one ("*")
        ("dynamodb:DeleteTable", {"TableName": cache}),
        ("dynamodb:Query", {"TableName": template.physical_name("OwnershipTable"), "IndexName": "elsewhere"}),
        ("secretsmanager:GetSecretValue", {"SecretId": "someone-elses-secret"}),
        ("dynamodb:TransactWriteItems", {"TransactItems": [{"Delete": {"TableName": quota}}]}),
    ]:
        with pytest.raises(AssertionError, match="does not allow"):
            aws_permissions.audit_permissions(template, [call])
