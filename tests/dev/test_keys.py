"""`mistral-gateway keys` against a deployed stack (in moto: a CloudFormation stack whose outputs name the usage
plan and the quota table) in front of the gateway served over HTTP, callers checked against that usage plan
as `make serve` does. Traffic comes from the official mistralai SDK with three keys the CLI created."""

from __future__ import annotations

import io
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from mistralai.client import Mistral, errors

from gateway_dev.cloud import usage_plan
from gateway_dev.cloud.template import Template
from gateway_dev.ops import keys_cli

STACK = "gateway-under-test"


class Operator:
    """The CLI as an operator runs it (`--stack NAME`), and the gateway it manages."""

    def __init__(self, url: str, plan_id: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.plan_id = plan_id
        self._capsys = capsys

    def run(self, *args: str) -> tuple[int, str, str]:
        out = io.StringIO()
        self._capsys.readouterr()
        code = keys_cli.main(["--stack", STACK, *args], out=out)
        return code, out.getvalue(), self._capsys.readouterr().err

    def json(self, *args: str) -> Any:
        code, out, err = self.run("--json", *args)
        assert code == 0, err
        return json.loads(out)

    def create(self, name: str, *options: str) -> tuple[str, str]:
        made = self.json("create", name, *options)
        return made["id"], made["key"]

    def sdk(self, key: str, seen: list[str] | None = None) -> Mistral:
        hooks = {"response": [lambda response: (seen if seen is not None else []).append(response.status_code)]}
        return Mistral(api_key=key, server_url=self.url, client=httpx2.Client(event_hooks=hooks, timeout=30))


def deployed_stack(template: Template, outputs: dict[str, str]) -> None:
    """A CloudFormation stack with the gateway's outputs (moto cannot build the usage plan from CloudFormation;
    the plan itself is made from the template's own properties, usage_plan.provision)."""
    import boto3

    marker = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "TableName": "stack-marker",
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        },
    }
    body = {
        "Resources": {"Marker": marker},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(body))


@pytest.fixture
def operator(gateway, template, capsys, monkeypatch) -> Iterator[Operator]:
    from gateway_dev.runner.asgi import BackgroundServer, LocalGateway
    from gateway_dev.runner.bridge import ApiBridge

    api, _ = usage_plan.provision(template, [])
    server = BackgroundServer(
        LocalGateway(ApiBridge(template, api_keys=usage_plan.UsagePlanCallers(api.usage_plan_id)))
    )
    deployed_stack(
        template, {"UsagePlanId": api.usage_plan_id, "QuotaTableName": api.quota_table, "ApiUrl": server.url}
    )
    try:
        yield Operator(server.url, api.usage_plan_id, capsys)
    finally:
        server.stop()


def served_lines(gateway) -> list[dict[str, Any]]:
    return [record for record in gateway.log_records() if record.get("message") == "request served"]


def totals_from_lines(lines: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """What the served lines say per caller, added up by hand."""
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for line in lines:
        if not line.get("caller"):
            continue
        mine = totals[line["caller"]]
        mine["requests"] += 1
        mine["prompt_tokens"] += line.get("prompt_tokens", 0)
        mine["completion_tokens"] += line.get("completion_tokens", 0)
        mine["cache_hits"] += line.get("cache") in ("HIT", "STALE")
        mine["saved_tokens"] += line.get("tokens_from_cache", 0)
        mine["errors"] += line["status"] >= 400
        mine["rate_limited"] += line["status"] == 429
    return totals


def test_three_apps_keys_budgets_models_and_an_exact_usage_report(operator, gateway, emulator) -> None:
    # Given three keys: one free, one limited to a model, one with a small token budget
    _, key_a = operator.create("app-a")
    id_b, key_b = operator.create("app-b", "--models", "mistral-small-latest")
    _, key_c = operator.create("app-c", "--tokens-per-day", "400")
    hello = [{"role": "user", "content": "Hello from the finance report"}]

    # When each app calls the gateway with the mistralai SDK
    a = operator.sdk(key_a)
    a.chat.complete(model="mistral-large-latest", messages=hello)
    a.chat.complete(model="mistral-large-latest", messages=hello)  # a cache hit
    for event in a.chat.stream(model="mistral-small-latest", messages=[{"role": "user", "content": "stream me"}]):
        assert event.data is not None
    a.embeddings.create(model="mistral-embed", inputs=["embed this"])

    b = operator.sdk(key_b)
    b.chat.complete(model="mistral-small-latest", messages=hello)
    with pytest.raises(errors.MistralError) as refused:
        b.chat.complete(model="mistral-large-latest", messages=hello)
    assert refused.value.status_code == 403 and json.loads(refused.value.body)["type"] == "permission_error"
    assert [card.id for card in b.models.list().data] == ["mistral-small-latest"]

    c = operator.sdk(key_c)
    statuses = []
    for n in range(1, 9):  # reservations grow with max_tokens until the day's budget cannot hold one
        try:
            c.chat.complete(
                model="mistral-small-latest", messages=[{"role": "user", "content": f"n{n}"}], max_tokens=60 * n
            )
            statuses.append(200)
        except errors.MistralError as error:
            statuses.append(error.status_code)
    assert 200 in statuses and 429 in statuses

    # Then `keys usage` agrees with the request served lines, key by key, to the token
    report = {row["key_id"]: row for row in operator.json("usage")}
    expected = totals_from_lines(served_lines(gateway))
    assert set(report) == set(expected) and len(report) == 3
    for key_id, line_totals in expected.items():
        for name, value in line_totals.items():
            assert report[key_id][name] == value, (key_id, name)
    assert report[id_b]["errors"] == 1 and report[id_b]["requests"] == 3
    by_a = next(row for row in report.values() if row["name"] == "app-a")
    assert by_a["cache_hits"] == 1 and by_a["saved_tokens"] > 0 and by_a["saved_usd"] > 0 and by_a["cost_usd"] > 0
    assert emulator.calls("/v1/chat/completions") >= 1

    # And by model, as CSV, and as a chart
    by_model = operator.json("usage", "--by", "model", "--key", "app-a")
    assert {row["model"] for row in by_model} == {"mistral-large-latest", "mistral-small-latest", "mistral-embed"}
    code, csv_text, _ = operator.run("usage", "--format", "csv")
    assert code == 0 and csv_text.splitlines()[0].startswith("key_id,name,requests,cache_hits")
    assert len(csv_text.splitlines()) == 4


def test_a_revoked_key_is_refused_within_a_second_and_others_go_on(operator) -> None:
    _, kept = operator.create("kept")
    _, gone = operator.create("gone")
    for key in (kept, gone):
        operator.sdk(key).models.list()
    code, out, _ = operator.run("revoke", "gone")
    assert code == 0 and "revoked" in out
    time.sleep(usage_plan.KEY_CHECK_MAX_AGE_SECONDS + 0.1)
    with pytest.raises(errors.MistralError) as refused:
        operator.sdk(gone).models.list()
    assert refused.value.status_code == 401 and json.loads(refused.value.body)["type"] == "authentication_error"
    operator.sdk(kept).models.list()
    assert {row["name"]: row["status"] for row in operator.json("list")} == {"kept": "active", "gone": "revoked"}


def test_rotation_keeps_the_old_value_for_its_grace_then_stops_it(operator, monkeypatch) -> None:
    from mistral_gateway import container

    monkeypatch.setenv("QUOTA_LIMITS_MAX_AGE_SECONDS", "0")  # no cached limits: the end is seen on the dot
    container.start(clock=container.wall_clock)  # the gateway and the CLI on one clock, the real one
    old_id, old = operator.create("rotating", "--models", "mistral-small-latest", "--requests-per-day", "50")
    rotated = operator.json("rotate", "rotating", "--grace", "2s")
    new = rotated["key"]
    assert rotated["old_id"] == old_id and rotated["id"] != old_id
    assert rotated["models"] == ["mistral-small-latest"] and rotated["limits"] == {"requests_per_day": 50}
    for key in (old, new):  # both work during the grace period
        operator.sdk(key).models.list()
    time.sleep(2.2)
    with pytest.raises(errors.MistralError) as refused:
        operator.sdk(old).models.list()
    assert refused.value.status_code == 401
    operator.sdk(new).models.list()
    statuses = {row["id"]: row["status"] for row in operator.json("list")}  # this call also disables it
    assert statuses[old_id] == "revoked"
    import boto3

    assert boto3.client("apigateway").get_api_key(apiKey=old_id)["enabled"] is False


def test_limits_and_models_are_read_and_changed_through_one_item(operator) -> None:
    key_id, _ = operator.create("team a/ü ✓")
    assert operator.json("limits", "team a/ü ✓") == {"id": key_id, "limits": {}}
    assert operator.json("limits", key_id, "--tokens-per-minute", "5000")["limits"] == {"tokens_per_minute": 5000}
    operator.json("models", key_id, "--set", "mistral-small-latest,codestral-latest")
    operator.json("models", key_id, "--add", "mistral-embed")
    assert operator.json("models", key_id, "--remove", "codestral-latest")["models"] == [
        "mistral-embed",
        "mistral-small-latest",
    ]
    # budgets and models never overwrite one another
    assert operator.json("limits", key_id, "--unset", "tokens_per_minute", "--requests-per-day", "9")["limits"] == {
        "requests_per_day": 9
    }
    shown = operator.json("show", "team a/ü ✓")
    assert shown["models"] == ["mistral-embed", "mistral-small-latest"] and shown["limits"] == {"requests_per_day": 9}
    assert operator.json("models", key_id, "--clear")["models"] == []
    assert operator.json("limits", "default", "--tokens-per-day", "100000")["id"] == "default"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "nobody"], 3, "no key 'nobody'"),
        (["revoke", "nobody"], 3, "no key 'nobody'"),
        (["create", ""], 2, "printable"),
        (["create", "bad\x07name"], 2, "printable"),
        (["create", "default"], 2, "default"),
        (["usage", "--since", "yesterday"], 2, "YYYY-MM-DD"),
        (["usage", "--chart", "spend.png"], 2, "HTML"),
    ],
)
def test_mistakes_are_one_line_and_an_exit_code(operator, args, code, message) -> None:
    result, _, err = operator.run(*args)
    assert result == code and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_stack_that_does_not_exist_is_one_line(aws, capsys) -> None:
    assert keys_cli.main(["--stack", "no-such-stack", "list"]) == 3
    err = capsys.readouterr().err
    assert "no stack named 'no-such-stack'" in err and "Traceback" not in err


def test_a_name_already_in_use_is_refused(operator) -> None:
    operator.create("twice")
    code, _, err = operator.run("create", "twice")
    assert code == 2 and "already exists" in err


def test_a_key_that_cannot_join_the_plan_is_deleted_again(operator, monkeypatch) -> None:
    import boto3

    client = boto3.client("apigateway")
    before = {item["id"] for item in client.get_api_keys()["items"]}
    gateway = keys_cli.connect_stack(STACK)

    def refuse(**_: Any) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "slow down"}}, "CreateUsagePlanKey")

    monkeypatch.setattr(gateway.apigateway, "create_usage_plan_key", refuse)
    out = io.StringIO()
    assert keys_cli.main(["create", "half"], out=out, gateway=gateway) == keys_cli.EXIT_THROTTLED
    assert {item["id"] for item in client.get_api_keys()["items"]} == before


def test_aws_failures_read_as_one_line() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    assert keys_cli.describe(NoCredentialsError(), None)[1] == keys_cli.EXIT_ACCESS
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "Scan")
    assert keys_cli.describe(throttled, None) == (
        "AWS is throttling these calls (ThrottlingException) even after retries: wait a minute, run it again",
        keys_cli.EXIT_THROTTLED,
    )
    message, code = keys_cli.describe(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), None)
    assert code == keys_cli.EXIT_ACCESS and "cannot reach" in message
    missing = ClientError({"Error": {"Code": "NotFoundException", "Message": "Invalid Usage Plan ID"}}, "Get")
    assert keys_cli.describe(missing, None)[1] == keys_cli.EXIT_NOT_FOUND


def test_local_without_make_serve_says_so(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(usage_plan.STATE_ENV, str(tmp_path / "none.json"))
    assert keys_cli.main(["--local", "list"]) == 3
    assert "no make serve running" in capsys.readouterr().err


def test_short_local_keys_are_kept_lengthened_and_still_sent_short(gateway, template) -> None:
    # Given make serve's keys as a newcomer types them (API Gateway takes no value under 20 characters)
    api, ids = usage_plan.provision(template, ["key-a", "key-b", "a-key-of-twenty-chars"])
    callers = usage_plan.UsagePlanCallers(api.usage_plan_id)
    # When each caller sends its key as typed
    found = {key: callers.find(key) for key in ("key-a", "key-b", "a-key-of-twenty-chars")}
    # Then each is its own caller, and neither a near-miss nor the stored long form of another key is anyone
    assert found == ids and len(set(found.values())) == 3
    assert callers.find("key-a~") is None and callers.find("key-") is None
    assert usage_plan.stored_value("a-key-of-twenty-chars") == "a-key-of-twenty-chars"
    assert len(usage_plan.stored_value("key-a")) >= usage_plan.API_GATEWAY_MIN_KEY_LENGTH


def test_keys_usage_bills_each_batch_item_at_its_own_model(operator, gateway, emulator) -> None:
    # Given an app whose answer to one question is already cached
    key_id, key = operator.create("batcher")
    cached = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "asked before the batch"}]}
    fresh = {"model": "mistral-large-latest", "messages": [{"role": "user", "content": "a new question in a batch"}]}
    with httpx2.Client(base_url=operator.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        first = client.post("/v1/chat/completions", json=cached)
        assert first.status_code == 200
        # When it sends a batch: that question again (a hit), a new one at another model, and a refused item
        batch = client.post("/v1/batch/chat/completions", json={"requests": [cached, fresh, {"model": "m"}]})
    assert batch.status_code == 200
    items = batch.json()["data"]
    assert [item["status"] for item in items] == [200, 200, 422] and items[0]["cache"] == "HIT"
    hit, miss = items[0]["body"]["usage"], items[1]["body"]["usage"]

    # Then `keys usage` bills each item at its own model: the miss's tokens and cost, the hit's savings
    by_model = {row["model"]: row for row in operator.json("usage", "--by", "model", "--key", "batcher")}
    large = by_model["mistral-large-latest"]
    assert (large["prompt_tokens"], large["completion_tokens"]) == (miss["prompt_tokens"], miss["completion_tokens"])
    assert large["cost_usd"] > 0 and large["requests"] == 0  # the batch is the request, its items are not
    small = by_model["mistral-small-latest"]
    assert small["prompt_tokens"] == hit["prompt_tokens"]  # billed once, by the first request
    assert small["cache_hits"] == 1 and small["saved_tokens"] == hit["prompt_tokens"] + hit["completion_tokens"]
    assert small["saved_usd"] > 0

    # And the batch's line carries its items' sums: `keys usage` agrees with the lines to the token
    lines = served_lines(gateway)
    batch_line = next(line for line in lines if line["cache"] == "BATCH")
    assert batch_line["prompt_tokens"] == miss["prompt_tokens"] and batch_line["batch_hits"] == 1
    assert batch_line["tokens_from_cache"] == small["saved_tokens"]
    report = {row["key_id"]: row for row in operator.json("usage")}[key_id]
    expected = totals_from_lines(lines)[key_id]
    for name in ("requests", "prompt_tokens", "completion_tokens", "saved_tokens", "errors"):
        assert report[name] == expected[name], name
    assert report["requests"] == 2 and report["errors"] == 0
    assert report["cost_usd"] == pytest.approx(sum(line.get("cost_usd", 0) for line in lines), abs=1e-9)
    assert report["saved_usd"] == pytest.approx(batch_line["saved_usd"], abs=1e-9)
