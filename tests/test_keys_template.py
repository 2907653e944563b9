"""The dashboard's per-key row, proved on the template as SAM translates it: CloudWatch Logs Insights over
the functions' own "request served" lines (no custom metric per key: CloudWatch bills per metric), grouped by
the caller's key id, over exactly the fields the code writes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from gateway_dev.cloud.template import Template

ROW = ("Top keys by cost (USD", "Top keys by cost saved by the cache (USD", "4xx and 429 by key")


@pytest.fixture(scope="module")
def translated() -> dict[str, Any]:
    return dict(Template().translated()["Resources"])


def dashboard_widgets(template: Template) -> list[dict[str, Any]]:
    return list(json.loads(template.resolve(template.properties("GatewayDashboard")["DashboardBody"]))["widgets"])


def per_key_row(template: Template) -> list[dict[str, Any]]:
    return [w for w in dashboard_widgets(template) if w["type"] == "log"]


def test_the_row_has_top_keys_by_cost_and_by_saving_and_4xx_by_key(template: Template) -> None:
    row = per_key_row(template)
    titles = [widget["properties"]["title"] for widget in row]
    assert len(titles) == 3 and all(title.startswith(start) for title, start in zip(titles, ROW, strict=True))
    for widget in row:
        query = widget["properties"]["query"]
        assert "filter message = 'request served'" in query and re.search(r"by caller\b", query)
    assert "sum(cost_usd)" in row[0]["properties"]["query"] and "sort cost_usd desc" in row[0]["properties"]["query"]
    assert "sum(saved_usd)" in row[1]["properties"]["query"]
    assert "status >= 400" in row[2]["properties"]["query"] and "by caller, status" in row[2]["properties"]["query"]
    assert {w["y"] for w in row} == {max(w["y"] for w in dashboard_widgets(template))}  # one row, at the bottom


def test_the_queries_read_both_functions_log_groups(template: Template, translated: dict[str, Any]) -> None:
    names = {template.resolve({"Ref": group}) for group in ("ApiLogGroup", "StreamLogGroup")}
    for widget in per_key_row(template):
        assert set(re.findall(r"SOURCE '([^']+)'", widget["properties"]["query"])) == names
    # in the deployed template the names are the log groups' own (Ref), the ones the functions write to
    body = translated["GatewayDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert body[1]["ApiLogs"] == {"Ref": "ApiLogGroup"} and body[1]["StreamLogs"] == {"Ref": "StreamLogGroup"}
    for function, group in (("ApiFunction", "ApiLogGroup"), ("StreamFunction", "StreamLogGroup")):
        assert translated[function]["Properties"]["LoggingConfig"]["LogGroup"] == {"Ref": group}


def test_the_queries_use_only_fields_the_served_line_carries(template: Template) -> None:
    from mistral_gateway.platform.economics import LIST_PRICES, Prices
    from mistral_gateway.policies import spend

    hit = {"caller": "k", "status": 200, "model": "mistral-small-latest", "cache": "HIT", "tokens_from_cache": 5,
           "prompt_tokens_from_cache": 2, "completion_tokens_from_cache": 3}  # fmt: skip
    miss = {"caller": "k", "status": 200, "model": "mistral-small-latest", "prompt_tokens": 2, "completion_tokens": 3}
    written = {"caller", "status", "message", "prompt_tokens", "completion_tokens", "tokens_from_cache"}
    prices = Prices(LIST_PRICES)
    written |= set(spend.line_fields(hit, prices)) | set(spend.line_fields(miss, prices))
    for widget in per_key_row(template):
        query = widget["properties"]["query"]
        used = set(re.findall(r"(?:sum|ispresent)\((\w+)\)", query)) | set(re.findall(r"filter .*?(\w+) [<>=]", query))
        assert used <= written, used - written


def test_no_metric_has_a_caller_dimension(template: Template) -> None:
    for widget in dashboard_widgets(template):
        for metric in widget["properties"].get("metrics", []):
            assert "caller" not in [part for part in metric if isinstance(part, str)]  # no such dimension
    from mistral_gateway.platform import observability

    assert "caller" not in json.dumps(sorted(observability.EMITTED_METRICS))


def test_the_functions_may_add_spend_to_the_quota_table_and_nothing_more(translated: dict[str, Any]) -> None:
    policy = translated["GatewayAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (budgets,) = [s for s in policy if isinstance(s, dict) and s.get("Sid") == "CountCallerBudgets"]
    assert "dynamodb:UpdateItem" in budgets["Action"] and budgets["Resource"] == {"Fn::GetAtt": ["QuotaTable", "Arn"]}
    assert not {"dynamodb:Scan", "dynamodb:PutItem", "dynamodb:DeleteItem"} & set(budgets["Action"])
