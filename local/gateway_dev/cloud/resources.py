"""The AWS resources the functions need, created in moto from template.yaml's own resource properties.

Used by the tests (inside `mock_aws`) and by the local runner (against a moto server in its own process, through
AWS_ENDPOINT_URL). Whatever the template says about the table's keys, billing, TTL and encryption is what gets
created, so a change in the template is a change in what the tests exercise.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from gateway_dev.cloud.locking import serialize_methods
from gateway_dev.cloud.template import Template

TABLE_PROPERTIES_FOR_CREATE = (
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "SSESpecification",
    "ProvisionedThroughput",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
)


@dataclass(frozen=True)
class LocalResources:
    tables: dict[str, str]  # logical id -> table name
    secrets: dict[str, str]  # logical id -> secret name


def create_resources(template: Template, *, mistral_api_key: str | None = None, session: Any = None) -> LocalResources:
    """Create every DynamoDB table and Secrets Manager secret the template defines (idempotent)."""
    import boto3

    session = session or boto3.session.Session()
    dynamodb = session.client("dynamodb")
    secretsmanager = session.client("secretsmanager")
    tables: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for logical_id in template.resources_of_type("AWS::DynamoDB::Table"):
        if not template.is_created(logical_id):
            continue
        props = template.properties(logical_id)
        name = template.physical_name(logical_id)
        create = {key: props[key] for key in TABLE_PROPERTIES_FOR_CREATE if key in props}
        if "SSESpecification" in create:  # CloudFormation says SSEEnabled where the API says Enabled
            sse = dict(create["SSESpecification"])
            sse["Enabled"] = sse.pop("SSEEnabled", False)
            create["SSESpecification"] = sse
        with contextlib.suppress(dynamodb.exceptions.ResourceInUseException):
            dynamodb.create_table(TableName=name, **create)
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        tables[logical_id] = name
    for logical_id in template.resources_of_type("AWS::SecretsManager::Secret"):
        if not template.is_created(logical_id):
            continue
        props = template.properties(logical_id)
        name = template.physical_name(logical_id)
        value = props.get("SecretString", "")
        if mistral_api_key is not None:
            value = json.dumps({"api_key": mistral_api_key})
        try:
            secretsmanager.create_secret(Name=name, SecretString=value, Description=props.get("Description", ""))
        except secretsmanager.exceptions.ResourceExistsException:
            secretsmanager.put_secret_value(SecretId=name, SecretString=value)
        secrets[logical_id] = name
    return LocalResources(tables=tables, secrets=secrets)


def make_moto_writes_atomic() -> None:
    """Make moto's DynamoDB writes atomic, as DynamoDB's are: moto checks a condition, then writes, so two
    threads can both pass it. Single-flight leases and quota counters rely on the real service's guarantee."""
    from moto.dynamodb.models import DynamoDBBackend

    serialize_methods(DynamoDBBackend, ("put_item", "update_item", "delete_item", "transact_write_items"))
