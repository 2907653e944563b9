"""Spend per key off the request path, proved on the template as SAM translates it: the API and streaming
functions' log groups deliver only their "request served" lines to the spend function, which may write the
quota table and nothing else, and whose failed deliveries are retried, then kept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway_dev.cloud.template import Template
from mistral_gateway.policies import spend_batches

SERVED_ONLY = '{ $.message = "request served" }'


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return dict(Template().translated()["Resources"])


def of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: resource for name, resource in resources.items() if resource["Type"] == kind}


def test_the_served_lines_of_both_request_functions_and_only_those_go_to_the_spend_function(
    resources: dict[str, Any],
) -> None:
    filters = of_type(resources, "AWS::Logs::SubscriptionFilter")
    assert {f["Properties"]["LogGroupName"]["Ref"] for f in filters.values()} == {"ApiLogGroup", "StreamLogGroup"}
    for subscription in filters.values():
        assert subscription["Properties"]["FilterPattern"] == SERVED_ONLY
        assert subscription["Properties"]["DestinationArn"] == {"Fn::GetAtt": ["SpendFunction", "Arn"]}
        # its invoke permission, for this very log group, exists first
        permission = resources[subscription["DependsOn"]]
        assert permission["Type"] == "AWS::Lambda::Permission"
        group = subscription["Properties"]["LogGroupName"]["Ref"]
        assert permission["Properties"]["SourceArn"] == {"Fn::GetAtt": [group, "Arn"]}
    # And the functions write to those very log groups (explicit resources, not Lambda's implicit ones)
    for function, group in (("ApiFunction", "ApiLogGroup"), ("StreamFunction", "StreamLogGroup")):
        assert resources[function]["Properties"]["LoggingConfig"]["LogGroup"] == {"Ref": group}
        assert resources[group]["Type"] == "AWS::Logs::LogGroup"


def test_the_filter_pattern_matches_what_the_code_reads() -> None:
    # The pattern's message is the one spend_batches reads, and the one the handlers log
    assert SERVED_ONLY == '{ $.message = "%s" }' % spend_batches.SERVED  # noqa: UP031


def test_cloudwatch_logs_may_invoke_it_for_those_log_groups_only(resources: dict[str, Any]) -> None:
    permissions = of_type(resources, "AWS::Lambda::Permission")
    from_logs = [p["Properties"] for p in permissions.values() if p["Properties"]["Principal"] == "logs.amazonaws.com"]
    assert sorted(p["SourceArn"]["Fn::GetAtt"][0] for p in from_logs) == ["ApiLogGroup", "StreamLogGroup"]
    for permission in from_logs:
        assert permission["FunctionName"] == {"Fn::GetAtt": ["SpendFunction", "Arn"]}
        assert permission["Action"] == "lambda:InvokeFunction"
        assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_the_spend_function_may_write_the_quota_table_and_nothing_else(resources: dict[str, Any]) -> None:
    role = resources["SpendFunctionRole"]["Properties"]
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    dynamodb = [s for s in statements if any(str(a).startswith("dynamodb:") for a in s["Action"])]
    (table,) = dynamodb
    # TransactWriteItems is authorised per action: the marker's Put and the ADD updates
    assert sorted(table["Action"]) == ["dynamodb:PutItem", "dynamodb:UpdateItem"]
    assert table["Resource"] == {"Fn::GetAtt": ["QuotaTable", "Arn"]}
    others = [s for s in statements if s is not table]
    assert [(s["Action"], s["Resource"]) for s in others] == [
        ("sqs:SendMessage", {"Fn::GetAtt": ["SpendDeadLetterQueue", "Arn"]})
    ]
    assert sorted(role["ManagedPolicyArns"]) == [  # logs and traces only: no table, queue or secret besides
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    ]
    # And it is told which table (the Globals' variable, as the request functions)
    assert resources["SpendFunction"]["Properties"]["Environment"]["Variables"]["QUOTA_TABLE_NAME"] == {
        "Ref": "QuotaTable"
    }


def test_a_delivery_that_cannot_be_applied_is_retried_then_kept_and_alarmed(resources: dict[str, Any]) -> None:
    function = resources["SpendFunction"]["Properties"]
    assert function["DeadLetterConfig"]["TargetArn"] == {"Fn::GetAtt": ["SpendDeadLetterQueue", "Arn"]}
    (config,) = of_type(resources, "AWS::Lambda::EventInvokeConfig").values()
    assert config["Properties"]["FunctionName"] == {"Ref": "SpendFunction"}
    assert config["Properties"]["MaximumRetryAttempts"] == 2
    queue = resources["SpendDeadLetterQueue"]["Properties"]
    retention_days = queue["MessageRetentionPeriod"] / 86_400
    assert retention_days == 14 and retention_days < spend_batches.MARKER_RETENTION_DAYS  # replays stay exactly-once
    alarm = resources["SpendDeadLettersAlarm"]["Properties"]
    queue_name = {"Fn::GetAtt": ["SpendDeadLetterQueue", "QueueName"]}
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": queue_name}]
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_the_log_level_cannot_drop_the_served_lines(template: Template) -> None:
    # The INFO "request served" line is the spend record: a WARNING level would silently stop spend
    assert template.document["Parameters"]["LogLevel"]["AllowedValues"] == ["DEBUG", "INFO"]


def test_the_spend_function_has_its_own_log_group_outside_the_subscription(resources: dict[str, Any]) -> None:
    assert resources["SpendFunction"]["Properties"]["LoggingConfig"]["LogGroup"] == {"Ref": "SpendLogGroup"}
    # Its own lines never come back to it: no subscription of any kind on its log group
    subscribed = {
        json.dumps(resource["Properties"].get("LogGroupName"))
        for resource in resources.values()
        if resource["Type"] == "AWS::Logs::SubscriptionFilter"
    }
    assert json.dumps({"Ref": "SpendLogGroup"}) not in subscribed and subscribed


def test_the_local_runner_delivers_the_lines_of_the_very_functions_the_template_subscribes(template: Template) -> None:
    from gateway_dev.runner.spend_delivery import subscribed_functions

    assert subscribed_functions(template) == {"ApiFunction", "StreamFunction"}
