"""A deterministic JSON value that validates against a JSON Schema: the emulator's structured answers.

Covers what clients generate (pydantic's model_json_schema, zod-to-json-schema, hand-written tool parameters):
objects, arrays, scalars with their bounds, enum/const, $ref into $defs/definitions, anyOf/oneOf/allOf and
nullable types. A schema it cannot satisfy (a `pattern`, contradictory bounds) yields its best effort; the
tests check validity with jsonschema.
"""

from __future__ import annotations

from typing import Any

_FORMATS = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "00:00:00",
    "email": "emulated@example.com",
    "uri": "https://example.com/emulated",
    "url": "https://example.com/emulated",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def instance(schema: Any, root: Any = None, name: str = "value") -> Any:
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        return instance(_resolve(schema["$ref"], root), root, name)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf"):
        options = schema.get(combinator)
        if options:
            chosen = next((option for option in options if option.get("type") != "null"), options[0])
            return instance({**_without(schema, combinator), **chosen}, root, name)
    if schema.get("allOf"):
        merged = _without(schema, "allOf")
        for part in schema["allOf"]:
            merged = _merge(merged, _resolve(part["$ref"], root) if "$ref" in part else part)
        return instance(merged, root, name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        properties = schema.get("properties") or {}
        return {key: instance(value, root, key) for key, value in properties.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        items = schema.get("prefixItems") or [schema.get("items") or {}] * count
        return [instance(item, root, name) for item in items[: max(count, len(items))]]
    if kind == "integer":
        return int(_number(schema, step=1))
    if kind == "number":
        return float(_number(schema, step=0.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, name)


def _string(schema: dict[str, Any], name: str) -> str:
    text = _FORMATS.get(str(schema.get("format")), f"emulated {name}")
    minimum, maximum = int(schema.get("minLength", 0)), schema.get("maxLength")
    text = text.ljust(minimum, "x")
    return text[: int(maximum)] if maximum is not None else text


def _number(schema: dict[str, Any], *, step: float) -> float:
    low = schema.get("minimum")
    if "exclusiveMinimum" in schema and isinstance(schema["exclusiveMinimum"], int | float):
        low = schema["exclusiveMinimum"] + step
    high = schema.get("maximum")
    if "exclusiveMaximum" in schema and isinstance(schema["exclusiveMaximum"], int | float):
        high = schema["exclusiveMaximum"] - step
    value = float(low) if low is not None else 1.0
    if high is not None and value > high:
        value = float(high)
    return value


def _resolve(reference: str, root: Any) -> Any:
    node = root
    for part in reference.removeprefix("#/").split("/"):
        if part:
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _without(schema: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != key}


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    merged = {**left, **right}
    if "properties" in left and "properties" in right:
        merged["properties"] = {**left["properties"], **right["properties"]}
    return merged
