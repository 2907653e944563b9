"""What an operator sees and controls: hit economics headers and metrics, exact per-key budgets."""

from __future__ import annotations

import json
import threading
from typing import Any

import boto3
import pytest

from gateway_dev.emulator.server import Fault
from gateway_dev.ops import quota as quota_admin

QUOTA_TABLE = "mistral-gateway-QuotaTable"
CALLER = "key-id-alice"


def ask(gateway: Any, text: str, caller: str = CALLER, **fields: Any) -> Any:
    body = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": text}], **fields}
    return gateway.chat(body, api_key_id=caller)


# --- hit economics ---------------------------------------------------------------------------------------------


def test_a_miss_says_what_it_cost_and_a_hit_what_it_saved(gateway, emulator, emitted_metrics) -> None:
    miss = ask(gateway, "What does a cache save?")
    hit = ask(gateway, "What does a cache save?")
    usage = miss.json["usage"]
    expected = (usage["prompt_tokens"] * 0.10 + usage["completion_tokens"] * 0.30) / 1_000_000
    assert miss.header("X-Usage-Prompt-Tokens") == str(usage["prompt_tokens"])
    assert miss.header("X-Usage-Completion-Tokens") == str(usage["completion_tokens"])
    assert float(miss.header("X-Estimated-Cost-USD")) == pytest.approx(expected)
    assert miss.header("X-Cache-Saved-Tokens") is None
    assert hit.header("X-Cache-Saved-Tokens") == str(usage["prompt_tokens"] + usage["completion_tokens"])
    assert float(hit.header("X-Cache-Saved-Cost-USD")) == pytest.approx(expected)
    assert hit.header("X-Estimated-Cost-USD") is None
    emitted = emitted_metrics()
    assert emitted["EstimatedCostUSD"] == pytest.approx(expected, abs=1e-8)
    assert emitted["EstimatedCostSavedUSD"] == pytest.approx(expected, abs=1e-8)
    assert emitted["TokensServedFromCacheByModel"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_prices_can_be_overridden_and_unknown_models_report_tokens_only(
    gateway, emulator, monkeypatch, capsys, reconfigure
):
    monkeypatch.setenv("MODEL_PRICES", json.dumps({"my-finetune": [1.0, 2.0]}))
    reconfigure()
    tuned = gateway.chat({"model": "my-finetune", "messages": [{"role": "user", "content": "priced"}]})
    usage = tuned.json["usage"]
    assert float(tuned.header("X-Estimated-Cost-USD")) == pytest.approx(
        (usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 2.0) / 1_000_000
    )
    unknown = gateway.chat({"model": "some-other-model", "messages": [{"role": "user", "content": "unpriced"}]})
    assert unknown.header("X-Usage-Prompt-Tokens") and unknown.header("X-Estimated-Cost-USD") is None
    dimensions = {json.loads(line).get("model") for line in capsys.readouterr().out.splitlines() if '"_aws"' in line}
    assert "some-other-model" not in dimensions  # callers cannot create metric dimensions at will


# --- per-key budgets -------------------------------------------------------------------------------------------


def limit(caller: str = CALLER, **limits: int) -> None:
    quota_admin.set_limits(QUOTA_TABLE, caller, limits)


def test_a_caller_without_limits_gets_no_ratelimit_headers(gateway, emulator) -> None:
    assert ask(gateway, "unlimited").header("RateLimit-Limit") is None


def test_the_request_budget_is_enforced_with_ietf_headers(gateway, emulator) -> None:
    # Given Alice may make 2 requests a minute
    limit(requests_per_minute=2)
    first, second, third = (ask(gateway, f"question {n}") for n in range(3))
    # Then the first two are answered and count down, the third is refused before any upstream call
    assert (first.status, first.header("RateLimit-Limit"), first.header("RateLimit-Remaining")) == (200, "2", "1")
    assert (second.status, second.header("RateLimit-Remaining")) == (200, "0")
    assert third.status == 429 and third.json["code"] == "quota_exceeded"
    assert third.header("RateLimit-Limit") == "2" and third.header("RateLimit-Remaining") == "0"
    assert 1 <= int(third.header("Retry-After")) <= 60
    assert int(third.header("RateLimit-Reset")) == int(third.header("Retry-After"))
    assert emulator.calls("/v1/chat/completions") == 2
    # And another caller is not affected
    assert ask(gateway, "question 0", caller="key-id-bob").status == 200


def test_a_refusal_by_one_window_is_not_counted_in_the_others(gateway, emulator) -> None:
    # Given room for 5 requests a minute but only 1 a day
    limit(requests_per_minute=5, requests_per_day=1)
    assert ask(gateway, "today's only question").status == 200
    # When the day refuses the next one (after the minute window counted it)
    refused = ask(gateway, "one too many")
    # Then the minute window gives it back: only answered requests are counted anywhere
    assert refused.status == 429 and refused.header("RateLimit-Limit") == "1"
    usage = quota_admin.show(QUOTA_TABLE, CALLER)["usage"]
    assert usage["minute"]["requests"] == 1 and usage["day"]["requests"] == 1
    assert usage["minute"]["tokens"] == usage["day"]["tokens"]


def test_cache_hits_are_free_by_default_and_can_be_made_to_count(gateway, emulator, monkeypatch, reconfigure) -> None:

    limit(requests_per_minute=1)
    assert ask(gateway, "cached once").status == 200
    hit = ask(gateway, "cached once")
    assert hit.status == 200 and hit.header("X-Cache") == "HIT" and hit.header("RateLimit-Remaining") == "0"
    monkeypatch.setenv("QUOTA_COUNT_HITS", "true")
    reconfigure()
    assert ask(gateway, "cached once").status == 429


def test_tokens_are_reserved_before_the_call_and_reconciled_after(gateway, emulator) -> None:
    limit(tokens_per_day=10_000)
    answer = ask(gateway, "count my tokens", max_tokens=500)
    spent = answer.json["usage"]["prompt_tokens"] + answer.json["usage"]["completion_tokens"]
    assert answer.header("RateLimit-Limit") == "10000"
    usage = quota_admin.show(QUOTA_TABLE, CALLER)["usage"]["day"]
    assert usage == {"requests": 1, "tokens": spent}  # the 500-token reservation was corrected to the real use
    # A request that could spend more than what is left is refused up front
    refused = ask(gateway, "too greedy", max_tokens=10_000)
    assert refused.status == 429 and emulator.calls("/v1/chat/completions") == 1


def test_a_failed_upstream_call_gives_the_tokens_back(gateway, emulator) -> None:
    limit(tokens_per_minute=5_000)
    emulator.script(*[Fault(status=503)] * 3)
    assert ask(gateway, "fails", max_tokens=1_000).status == 502
    assert quota_admin.show(QUOTA_TABLE, CALLER)["usage"]["minute"]["tokens"] == 0


def test_default_limits_apply_to_every_key_without_its_own(gateway, emulator) -> None:
    limit("default", requests_per_day=1)
    assert ask(gateway, "first", caller="key-id-carol").status == 200
    assert ask(gateway, "second", caller="key-id-carol").status == 429
    limit("key-id-dave", requests_per_day=5)
    assert [ask(gateway, f"dave {n}", caller="key-id-dave").status for n in range(2)] == [200, 200]


def test_a_callers_limits_and_the_defaults_are_one_read_of_the_quota_table(gateway, emulator) -> None:
    # Given the default's limits, and a key with models of its own but no budgets
    limit("default", requests_per_day=5)
    quota_admin.set_models(boto3.client("dynamodb"), QUOTA_TABLE, "key-id-erin", ["mistral-small-latest"])
    # When that key's first request arrives, and then another key's
    erin = ask(gateway, "erin's first", caller="key-id-erin")
    frank = ask(gateway, "frank's first", caller="key-id-frank")
    # Then each key's item and the default's came in one round trip (the function's AWS calls, as the permissions
    # audit records them), and both were applied: erin's models with the default's budget, frank's the default's
    reads = [
        action.partition(":")[2]
        for action, params in gateway.aws_calls
        if "Get" in action and QUOTA_TABLE in (params.get("TableName"), *params.get("RequestItems", {}))
    ]
    assert reads == ["BatchGetItem", "BatchGetItem"]
    assert (erin.status, frank.status) == (200, 200)
    assert erin.header("RateLimit-Limit") == frank.header("RateLimit-Limit") == "5"
    other_model = {"model": "mistral-large-latest", "messages": [{"role": "user", "content": "x"}]}
    assert gateway.chat(other_model, api_key_id="key-id-erin").status == 403
    assert gateway.chat(other_model, api_key_id="key-id-frank").status == 200


def test_the_permissions_audit_sees_the_functions_calls_and_refuses_one_the_role_lacks(
    gateway, emulator, template, tmp_path
) -> None:
    # Given a request that reads a key's limits, looks up, stores and counts
    import aws_permissions

    from gateway_dev.cloud.template import Template

    limit("default", requests_per_day=5)
    assert ask(gateway, "audited", caller="key-id-gina").status == 200
    # Then the audit saw the function's own calls, the batched limits read among them
    deployed = aws_permissions.deployed_role(template)
    needed = {pair for action, params in gateway.aws_calls for pair in aws_permissions.needed(deployed, action, params)}
    assert ("dynamodb:BatchGetItem", template.arn("QuotaTable")) in needed
    assert ("dynamodb:PutItem", template.arn("CacheTable")) in needed
    # And the same calls fail it against a role without the batched read
    narrower = tmp_path / "template.yaml"
    granted = "- dynamodb:BatchGetItem  # a key's limits with the default's"
    narrower.write_text(template.path.read_text().replace(granted, "- dynamodb:DescribeTable  # instead"))
    with pytest.raises(AssertionError, match="BatchGetItem"):
        aws_permissions.audit_permissions(Template(narrower), gateway.aws_calls)


def test_concurrent_requests_never_overspend_the_budget(gateway, emulator) -> None:
    # Given a budget of 5 requests a minute and 12 different requests arriving at once
    limit(requests_per_minute=5, tokens_per_minute=100_000)
    gateway.chat({"model": "m", "messages": [{"role": "user", "content": "warm up"}]})  # no caller: no budget
    start = threading.Barrier(12)
    statuses: list[int] = []

    def run(n: int) -> None:
        start.wait()
        statuses.append(ask(gateway, f"concurrent {n}", max_tokens=100).status)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # Then exactly five were answered and the counters hold exactly what was spent
    failing_open = [r for r in gateway.log_records() if "failing open" in r["message"]]
    assert not failing_open
    assert sorted(statuses) == [200] * 5 + [429] * 7
    usage = quota_admin.show(QUOTA_TABLE, CALLER)["usage"]["minute"]
    assert usage["requests"] == 5 and 0 < usage["tokens"] <= 100_000


@pytest.mark.spend_undeliverable
def test_a_sick_quota_table_fails_open(gateway, emulator) -> None:
    import boto3

    limit(requests_per_minute=1)
    boto3.client("dynamodb").delete_table(TableName=QUOTA_TABLE)
    assert [ask(gateway, f"open {n}").status for n in range(2)] == [200, 200]
    assert any(r["message"] == "quota table unavailable, failing open" for r in gateway.log_records())


def test_the_admin_cli_sets_shows_and_clears_limits(aws, capsys) -> None:
    assert quota_admin.main(["set", "key-x", "--tokens-per-minute", "900", "--table", QUOTA_TABLE]) == 0
    assert json.loads(capsys.readouterr().out)["limits"] == {"tokens_per_minute": 900}
    quota_admin.main(["show", "key-x", "--table", QUOTA_TABLE])
    shown = json.loads(capsys.readouterr().out)
    assert shown["limits"] == {"tokens_per_minute": 900} and shown["usage"]["minute"] == {"requests": 0, "tokens": 0}
    quota_admin.main(["clear", "key-x", "--table", QUOTA_TABLE])
    assert quota_admin.show(QUOTA_TABLE, "key-x")["limits"] == {}
