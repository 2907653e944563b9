"""admission.py against the models: it never vouches for an invalid body, and what it vouches for keys exactly as
the validated form would (so the pydantic-free hit path and the validated path share cache entries)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mistral_gateway.requests import admission, models
from mistral_gateway.requests.canonical import canonical_chat

edge_numbers = st.sampled_from([0, 1, 2, 3, 128, 129, -1, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -2.0, -2.5, 10**6, 1e308])
junk = st.booleans() | st.none() | st.sampled_from(["", "x", "0.5", "1", "float", "base64", "int8"]) | edge_numbers
texts = st.text(max_size=8)
roles = st.sampled_from(["system", "user", "user", "assistant", "tool", "wizard"])
message = st.fixed_dictionaries({"role": roles, "content": texts}, optional={"name": texts | st.none()}) | st.builds(
    dict, role=roles, content=junk
)
# What each field is usually given (often valid, sometimes at or past an edge), and sometimes junk instead.
PLAUSIBLE = {
    "model": st.sampled_from(["mistral-small-latest"] * 6 + ["", 7, None, "m" * 257]),
    "messages": st.lists(message, max_size=3),
    "prompt": texts,
    "suffix": texts,
    "input": texts | st.lists(texts | junk, max_size=2),
    "stop": texts | st.lists(texts, max_size=2),
    "stream": st.booleans(),
    "safe_prompt": st.booleans(),
    "encoding_format": st.sampled_from(["float", "base64", "hex"]),
    "output_dtype": st.sampled_from(["float", "int8"]),
    "tools": st.just([]),
    "metadata": st.dictionaries(texts, texts, max_size=1),
}
FIELDS = {
    "ChatCompletionRequest": ["model", "messages", "temperature", "top_p", "max_tokens", "min_tokens", "stream",
                              "stop", "random_seed", "presence_penalty", "frequency_penalty", "n", "safe_prompt",
                              "tools", "metadata"],
    "FIMCompletionRequest": ["model", "prompt", "suffix", "temperature", "top_p", "max_tokens", "stop", "stream"],
    "EmbeddingRequest": ["model", "input", "encoding_format", "output_dtype"],
}  # fmt: skip
REQUIRED = {"ChatCompletionRequest": ("model", "messages"), "FIMCompletionRequest": ("model", "prompt"),
            "EmbeddingRequest": ("model", "input")}  # fmt: skip


def value_of(field: str) -> Any:
    plausible = PLAUSIBLE.get(field, edge_numbers)
    return st.one_of(plausible, plausible, plausible, plausible, junk)


VALID = {
    "ChatCompletionRequest": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    "FIMCompletionRequest": {"model": "codestral-latest", "prompt": "def f("},
    "EmbeddingRequest": {"model": "mistral-embed", "input": "hi"},
}


@st.composite
def bodies(draw: Any) -> tuple[str, dict[str, Any]]:
    """Mostly a valid body with a few fields set (often to an edge value), sometimes anything."""
    name = draw(st.sampled_from(sorted(FIELDS)))
    base = draw(st.sampled_from([VALID[name], VALID[name], {}]))
    fields = draw(st.lists(st.sampled_from(FIELDS[name]), max_size=4, unique=True))
    return name, {**base, **{field: draw(value_of(field)) for field in (*fields, *REQUIRED[name][len(base) :])}}


def canonical(name: str, form: dict[str, Any]) -> Any:
    return canonical_chat(form) if name != "EmbeddingRequest" else form


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(drawn=bodies())
def test_what_admission_vouches_for_is_valid_and_keys_as_its_validated_form(drawn: Any) -> None:
    name, body = drawn
    if admission.certainly_valid(name, body):
        validated = getattr(models, name).model_validate(body)
        assert canonical(name, body) == canonical(name, validated.key_form())


def test_the_common_requests_are_vouched_for() -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2, "max_tokens": 64}
    assert admission.certainly_valid("ChatCompletionRequest", chat)
    assert admission.certainly_valid("ChatCompletionRequest", {**chat, "stream": True, "stop": ["\n"]})
    assert admission.certainly_valid("EmbeddingRequest", {"model": "mistral-embed", "input": ["a", "b"]})
    assert admission.certainly_valid("FIMCompletionRequest", {"model": "codestral-latest", "prompt": "def"})
    assert not admission.certainly_valid("ChatCompletionRequest", {**chat, "max_tokens": 64.0})  # pydantic decides


@settings(max_examples=300, deadline=None, derandomize=True)
@given(fields=st.dictionaries(st.sampled_from(["seed", "max_completion_tokens", "stream_options"]), junk | st.just({})))
def test_what_admission_vouches_for_in_the_openai_dialect_is_valid(fields: dict[str, Any]) -> None:
    if admission.openai_fields_certainly_valid(fields):
        models.OpenAIDialectFields.model_validate(fields)
