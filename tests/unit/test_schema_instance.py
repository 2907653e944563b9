"""The emulator's structured answers validate against the schema a client sends."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from gateway_dev.emulator.schema_instance import instance


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str = Field(min_length=12)
    zip_code: str | None = None


class Person(BaseModel):
    name: str
    age: int = Field(ge=18, le=130)
    height: float = Field(gt=0)
    tags: list[str] = Field(min_length=2)
    colour: Colour
    kind: Literal["human"]
    address: Address
    friends: list[Address] = []
    active: bool
    nickname: str | None


HAND_WRITTEN = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 4},
        "when": {"type": "string", "format": "date-time"},
        "units": {"type": ["string", "null"], "enum": ["metric", "imperial"]},
        "days": {"type": "integer", "exclusiveMinimum": 0, "maximum": 7},
        "mixed": {"allOf": [{"type": "object", "properties": {"a": {"type": "number"}}}, {"required": ["a"]}]},
    },
    "required": ["city", "when", "units", "days", "mixed"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("schema", [Person.model_json_schema(), HAND_WRITTEN, {"type": "object"}, {}])
def test_instances_validate_and_are_deterministic(schema) -> None:
    value = instance(schema)
    jsonschema.validate(value, schema)
    assert instance(schema) == value


def test_a_pydantic_model_parses_the_instance() -> None:
    assert Person.model_validate(instance(Person.model_json_schema())).age == 18
