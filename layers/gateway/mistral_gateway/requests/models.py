"""Pydantic models of the requests the gateway accepts, mirroring Mistral's API.

The field set of `ChatCompletionRequest` equals the mistralai SDK's own request model (a test keeps them in
step); on top of the SDK's types we enforce the ranges Mistral documents, so a bad value gets our 422
before any upstream call. Unknown top-level fields are rejected, as Mistral does. Numbers must be JSON
numbers (no lax coercion of "0.5" or true); a whole-number field takes 1.0 as 1. These models run before the
cache lookup, except for the simple requests admission.py vouches for, whose hits never load pydantic.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationInfo,
    field_validator,
)

from mistral_gateway.requests.admission import MAX_EMBEDDING_INPUTS, MAX_MESSAGES, MAX_OUTPUT_TOKENS, MAX_TEXT_CHARS


def _whole_number(value: Any) -> int:
    """JSON numbers only: an int, or a float with nothing after the point (Mistral reads 1.0 as 1)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise ValueError("must be a whole number")


def _real_number(value: Any) -> float:
    """JSON numbers only: no strings ("0.5") and no booleans, which lax coercion would pass to Mistral."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
    raise ValueError("must be a finite number")


Whole = Annotated[int, BeforeValidator(_whole_number)]
Real = Annotated[float, BeforeValidator(_real_number)]
Text = Annotated[StrictStr, Field(max_length=MAX_TEXT_CHARS)]
ModelName = Annotated[StrictStr, Field(min_length=1, max_length=256)]


# defer_build: a model builds its validator when first used, not when this module is imported, so a cold chat
# miss builds the chat request's and what it nests, not FIM's or embeddings' (import plus first validation of a
# chat request: 48 ms built up front, 34 ms deferred, on the bench machine).
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    def key_form(self) -> dict[str, Any]:
        """What the caller set, as validated (1.0 -> 1 for a whole number): the cache key's input."""
        return self.model_dump(exclude_unset=True, exclude_none=True, mode="json")


class _Open(BaseModel):
    # Nested objects Mistral keeps extending (content parts, tool schemas): accept extra keys, pass them on.
    model_config = ConfigDict(extra="allow", defer_build=True)


class ContentPart(_Open):
    type: StrictStr

    @field_validator("type")
    @classmethod
    def _known_shape(cls, value: str) -> str:
        if not value:
            raise ValueError("content part type must not be empty")
        return value


Content = Text | Annotated[list[ContentPart], Field(max_length=MAX_MESSAGES)]


class FunctionCall(_Open):
    name: StrictStr
    arguments: StrictStr | dict[str, Any]


class ToolCall(_Open):
    id: StrictStr | None = None
    type: StrictStr | None = "function"
    function: FunctionCall
    index: Whole | None = None


class SystemMessage(_Strict):
    role: Literal["system"]
    content: Content


class UserMessage(_Strict):
    role: Literal["user"]
    content: Content | None


class AssistantMessage(_Strict):
    role: Literal["assistant"]
    content: Content | None = None
    tool_calls: list[ToolCall] | None = None
    prefix: StrictBool = False


class ToolMessage(_Strict):
    role: Literal["tool"]
    content: Content | None
    tool_call_id: StrictStr | None = None
    name: StrictStr | None = None


Message = Annotated[SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")]


class Function(_Open):
    name: Annotated[StrictStr, Field(min_length=1, max_length=256)]
    description: StrictStr | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    strict: StrictBool | None = None


class Tool(_Open):
    type: StrictStr = "function"
    function: Function | None = None


class NamedToolChoice(_Strict):
    type: Literal["function"] = "function"
    function: dict[str, Any]


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict[str, Any] | None = None


class Prediction(_Open):
    type: Literal["content"] = "content"
    content: StrictStr = ""


Probability = Annotated[Real, Field(ge=0.0, le=1.0)]
Penalty = Annotated[Real, Field(ge=-2.0, le=2.0)]
Temperature = Annotated[Real, Field(ge=0.0, le=2.0)]
NonNegativeInt = Annotated[Whole, Field(ge=0)]
TokenCount = Annotated[Whole, Field(ge=0, le=MAX_OUTPUT_TOKENS)]
LogprobCount = Annotated[Whole, Field(ge=0, le=20)]
Stop = StrictStr | list[StrictStr]


class _Completion(_Strict):
    """What chat and FIM share: the model, sampling, length, stop, seed, labels and the prompt cache key."""

    model: ModelName
    temperature: Temperature | None = None
    top_p: Probability | None = None
    max_tokens: TokenCount | None = None
    min_tokens: TokenCount | None = None
    stream: StrictBool = False
    stop: Stop | None = None
    random_seed: NonNegativeInt | None = None
    metadata: dict[str, Any] | None = None
    prompt_cache_key: StrictStr | None = None

    def sdk_arguments(self) -> dict[str, Any]:
        """Keyword arguments for the SDK's complete(): only what the caller set, as plain data (the gateway
        always asks for the whole answer; `stream` is how it is served, not how it is fetched)."""
        return self.model_dump(exclude_unset=True, exclude_none=True, exclude={"stream"}, mode="json")


class OpenAIDialectFields(BaseModel):
    """The OpenAI SDK's names for chat fields (dialect.py renames or drops them): checked as strictly as their
    Mistral counterparts first, so a bad value is refused even where the Mistral field wins."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    seed: NonNegativeInt | None = None
    max_completion_tokens: TokenCount | None = None
    stream_options: dict[str, Any] | None = None
    # Labels OpenAI reads and Mistral never sees (dropped by dialect.py): still refused when malformed.
    user: Annotated[str, Field(max_length=512)] | None = None
    safety_identifier: Annotated[str, Field(max_length=512)] | None = None
    store: StrictBool | None = None


class ChatCompletionRequest(_Completion):
    messages: Annotated[list[Message], Field(min_length=1, max_length=MAX_MESSAGES)]
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["auto", "none", "any", "required"] | NamedToolChoice | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    repetition_penalty: Annotated[Real, Field(ge=0.0)] | None = None
    top_k: NonNegativeInt | None = None
    logprobs: StrictBool | None = None
    top_logprobs: LogprobCount | None = None
    prompt_logprobs: StrictBool | None = None
    top_prompt_logprobs: LogprobCount | None = None
    n: Annotated[Whole, Field(ge=1, le=128)] | None = None
    prediction: Prediction | None = None
    parallel_tool_calls: StrictBool | None = None
    reasoning_effort: StrictStr | None = None
    prompt_mode: StrictStr | None = None
    guardrails: list[dict[str, Any]] | None = None
    service_tier: Literal["auto", "standard_only"] | None = None
    safe_prompt: StrictBool | None = None


class FIMCompletionRequest(_Completion):
    """Fill-in-the-middle (codestral): the SDK's FIMCompletionRequest with Mistral's ranges."""

    prompt: Text
    suffix: Text | None = None


class EmbeddingRequest(_Strict):
    """Embeddings: `input` on the wire (the SDK's `inputs`), one text or a list of texts."""

    model: ModelName
    input: Text | Annotated[list[Text], Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)]
    metadata: dict[str, Any] | None = None
    output_dimension: Annotated[Whole, Field(ge=1)] | None = None
    output_dtype: Literal["float", "int8", "uint8", "binary", "ubinary"] | None = None
    encoding_format: Literal["float", "base64"] | None = None

    @field_validator("encoding_format")
    @classmethod
    def _readable_answer(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Mistral would answer base64 strings the SDK's response model cannot hold (a 502 for the caller).
        if value == "base64" and info.data.get("output_dtype") not in (None, "float"):
            raise ValueError("base64 is only available for float vectors on this gateway")
        return value

    @property
    def converts_locally(self) -> bool:
        """Float vectors are fetched as floats and base64-encoded here: one cache entry serves both encodings."""
        return self.output_dtype in (None, "float")

    def sdk_arguments(self) -> dict[str, Any]:
        excluded = {"input", "encoding_format"} if self.converts_locally else {"input"}
        arguments = self.model_dump(exclude_unset=True, exclude_none=True, exclude=excluded)
        arguments["inputs"] = self.input
        return arguments
