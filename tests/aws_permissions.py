"""Every AWS call the gateway's functions make in a test, checked against the role the template gives them.

moto allows any call, so a call the deployed role does not grant (an operation left out of the policy, a table or
index it does not name) would pass every local test and fail in the cloud: usually quietly, since the cache and
the budgets fail open. The `gateway` fixture records the calls of every AWS client its containers build and,
after the test, asserts each is allowed by the template's GatewayAccessPolicy (what the API and streaming
functions' roles carry), its intrinsic functions resolved as the local runner resolves them.

A test's own calls through those clients count too (stricter, never looser): a test that acts as the operator
(deleting a table) uses a client of its own. Only Allow statements with explicit actions and resources are read,
which is all the policy holds; a call that names no resource needs a grant on "*". The spend function has a role
of its own, checked statically in test_spend_template.py.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway_dev.cloud.template import Template

POLICY = "GatewayAccessPolicy"


def implied_parameters(template: Template) -> dict[str, str]:
    """The stack parameters the test's environment implies: a function variable that is a bare `!Ref
    <parameter>` (SELF_HOSTED_SECRET_ID is SelfHostedSecretArn) set by a test stands for a stack deployed with
    that parameter, whose policy may grant more (the self-hosted server's secret)."""
    declared = template.document.get("Parameters", {})
    parameters = dict(template.overrides)
    for variable, value in template.function_variables("ApiFunction").items():
        reference = value.get("Ref") if isinstance(value, dict) else None
        if reference in declared and variable in os.environ:
            parameters[reference] = os.environ[variable]
    return parameters


def deployed_role(template: Template) -> Role:
    """The functions' role in the stack this test's environment stands for."""
    parameters = frozenset(implied_parameters(template).items())
    return role(template.path, parameters, template.region, template.account, template.stack_name)


@dataclass(frozen=True)
class Role:
    """What the functions' role allows, as (actions, resources) per Allow statement, resources as the ARNs or names
    they resolve to; and the template's tables by their names, for the ARNs calls name them by."""

    allowed: list[tuple[set[str], set[str]]]
    table_arns: dict[str, str]


@functools.cache
def role(path: Path, parameters: frozenset[tuple[str, str]], region: str, account: str, stack_name: str) -> Role:
    """The role of the stack deployed from `path` with `parameters` (in that region, account and stack name):
    read once per stack (reading the template takes longer than most tests)."""
    template = Template(path, dict(parameters), region=region, account=account, stack_name=stack_name)
    statements = template.resolve(template.properties(POLICY)["PolicyDocument"]["Statement"])
    allowed: list[tuple[set[str], set[str]]] = []
    for statement in statements:
        if not statement or statement.get("Effect") != "Allow":
            continue  # a statement an unmet condition left out (AWS::NoValue)
        actions, resources = statement["Action"], statement["Resource"]
        named = {resources} if isinstance(resources, str) else set(resources)
        # A secret is named by its ARN in the policy and by its name in the call: locally, the same secret.
        named |= {arn.partition(":secret:")[2] for arn in named if arn.startswith("arn:aws:secretsmanager:")}
        allowed.append(({actions} if isinstance(actions, str) else set(actions), named))
    tables = template.resources_of_type("AWS::DynamoDB::Table")
    return Role(allowed, {template.physical_name(table): template.arn(table) for table in tables})


def needed(role: Role, action: str, params: dict[str, Any]) -> set[tuple[str, str]]:
    """The (IAM action, resource) pairs one call needs, resources named as the policy names them. A
    transaction has no IAM action of its own: each of its items needs its own (PutItem, UpdateItem, ...)."""
    service = action.partition(":")[0]
    if service == "secretsmanager":
        return {(action, str(params.get("SecretId", "*")))}

    def table_arn(name: str) -> str:
        return role.table_arns.get(name, f"a table the template does not define: {name}")

    if "TransactItems" in params:
        return {
            (f"dynamodb:{kind}Item", table_arn(item["TableName"]))
            for entry in params["TransactItems"]
            for kind, item in entry.items()
        }
    tables = {str(params["TableName"])} if "TableName" in params else set()
    tables |= set(params.get("RequestItems", {}))
    index = f"/index/{params['IndexName']}" if "IndexName" in params else ""
    return {(action, table_arn(table) + index) for table in tables} or {(action, "*")}  # no table named: all


def is_allowed(allowed: list[tuple[set[str], set[str]]], action: str, resource: str) -> bool:
    return any(action in actions and resource in resources for actions, resources in allowed)


def record_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """(action, params) of every call made through a client the gateway's containers build from now until the
    test's monkeypatch is undone."""
    from mistral_gateway import container

    calls: list[tuple[str, dict[str, Any]]] = []
    build = container.Container._new_aws_client

    def seen(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((f"{model.service_model.signing_name}:{model.name}", dict(params)))

    def watched_build(self: Any, service: str) -> Any:
        client = build(self, service)
        client.meta.events.register("before-parameter-build", seen)
        return client

    monkeypatch.setattr(container.Container, "_new_aws_client", watched_build)
    return calls


def audit_permissions(template: Template, calls: list[tuple[str, dict[str, Any]]]) -> None:
    deployed = deployed_role(template)
    refused = sorted(
        {
            (needed_action, resource)
            for action, params in calls
            for needed_action, resource in needed(deployed, action, params)
            if not is_allowed(deployed.allowed, needed_action, resource)
        }
    )
    assert not refused, f"AWS calls the functions' role does not allow ({POLICY} in template.yaml): {refused}"
