"""The routes outside every usage plan (no caller key) are bounded for everyone by a stage-wide throttle, and
what they serve may be reused by browsers: no one can make them cost without limit (/docs is ~1.7 MB)."""

from __future__ import annotations

from typing import Any

from gateway_dev.cloud.template import Template


def stage_method_settings(template: Template) -> dict[tuple[str, str], dict[str, Any]]:
    resources = template.translated()["Resources"]
    (stage,) = [r for r in resources.values() if r["Type"] == "AWS::ApiGateway::Stage"]
    return {(s["ResourcePath"], s["HttpMethod"]): s for s in stage["Properties"].get("MethodSettings", [])}


def test_every_public_route_has_a_stage_wide_throttle(template: Template) -> None:
    settings = stage_method_settings(template)
    public = [route for route in template.routes() if route.public]
    assert {route.path for route in public} >= {"/docs", "/openapi.json", "/health"}
    for route in public:
        throttle = settings[("/" + route.path.replace("/", "~1"), route.method)]  # API Gateway encodes / as ~1
        assert 0 < throttle["ThrottlingRateLimit"] <= 10 and 0 < throttle["ThrottlingBurstLimit"] <= 20


def test_the_public_documents_may_be_reused_by_browsers(gateway: Any) -> None:
    for path in ("/docs", "/openapi.json"):
        response = gateway.request("GET", path)
        assert response.status == 200 and response.header("Cache-Control") == "public, max-age=3600"
