"""Which Mistral routes the gateway caches, passes through, or keeps off by default: decided here, only here.

The gateway holds ONE Mistral key for all its callers. Inference routes are stateless: what one caller sends
cannot be read back by another. Account routes (files, libraries, batch jobs, fine-tuning, agents and
conversations storage, ...) create state under that one Mistral account, so any caller could list, read or
delete what another caller created. The template parameter AccountRoutes (ACCOUNT_ROUTES) decides what they
do: `owned` (the default: each caller uses only what it created, checked per route by ownership.py),
`shared` (passed through: right only when every caller is one tenant) or `off` (403). A route not in this
table is 404 (except under `shared`): a new Mistral endpoint stays closed until someone decides what it is.

The README's route table mirrors this one (a test keeps them in step).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Policy(StrEnum):
    CACHED = "cached"  # stateless and deterministic: answered from the cache like chat
    PASSED = "passed through"  # stateless inference: relayed, never cached
    ACCOUNT = "account route"  # account state: per AccountRoutes (owned by default: ownership.py)


@dataclass(frozen=True)
class RouteRule:
    prefix: str  # path under /v1/, matched on whole segments ("ocr" matches /v1/ocr, not /v1/ocrx)
    methods: frozenset[str]  # empty = any method
    policy: Policy
    why: str


def _rule(prefix: str, methods: str, policy: Policy, why: str) -> RouteRule:
    return RouteRule(prefix, frozenset(methods.split()) if methods else frozenset(), policy, why)


# First match wins, so more specific prefixes come first. Routes with their own handler in functions/api/app.py
# (chat, fim, embeddings, models list, models/{id}, the gateway's batch) never reach this table.
ROUTES: tuple[RouteRule, ...] = (
    _rule("ocr", "POST", Policy.CACHED, "deterministic and costly; keyed on the document (see docs/passthrough.md)"),
    _rule("moderations", "POST", Policy.CACHED, "deterministic classifier over the input"),
    _rule("chat/moderations", "POST", Policy.CACHED, "deterministic classifier over the messages"),
    _rule("classifications", "POST", Policy.CACHED, "deterministic classifier over the input"),
    _rule("chat/classifications", "POST", Policy.CACHED, "deterministic classifier over the messages"),
    _rule("agents/completions", "POST", Policy.PASSED, "inference with an agent's settings; stores nothing"),
    _rule("audio/transcriptions", "POST", Policy.PASSED, "inference on an uploaded or linked audio file"),
    _rule("audio/speech", "POST", Policy.PASSED, "inference (text to speech); stores nothing"),
    _rule("files", "", Policy.ACCOUNT, "uploaded files are listed, read and deleted account-wide"),
    _rule("libraries", "", Policy.ACCOUNT, "document libraries belong to the account"),
    _rule("batch/jobs", "", Policy.ACCOUNT, "batch jobs and their results belong to the account"),
    _rule("fine_tuning", "", Policy.ACCOUNT, "fine-tuning jobs and models belong to the account"),
    _rule("models", "DELETE", Policy.ACCOUNT, "deletes a fine-tuned model of the account"),
    _rule("agents", "", Policy.ACCOUNT, "agents are created, listed and deleted account-wide"),
    _rule("conversations", "", Policy.ACCOUNT, "conversations are stored and listable account-wide"),
    _rule("responses", "", Policy.ACCOUNT, "responses may be stored and read back account-wide"),
    _rule("audio", "", Policy.ACCOUNT, "voices, audio agents and sessions belong to the account"),
    _rule("connectors", "", Policy.ACCOUNT, "connectors hold credentials for the whole account"),
)
# OpenAI routes Mistral does not have, by path under /v1/: a 404 that says what the caller reached for and where
# to go instead, whatever AccountRoutes says (relaying one would only bring back Mistral's bare 404).
NOT_MISTRAL: dict[str, str] = {
    "completions": "/v1/completions is OpenAI's legacy text completions, which Mistral does not offer. Use "
    "/v1/chat/completions (messages), or /v1/fim/completions (prompt and suffix, with a Codestral model).",
}
UNLISTED = RouteRule("", frozenset(), Policy.ACCOUNT, "not known to be stateless inference")
# Below an inference route (/v1/ocr/files, /v1/agents/completions/x): no such Mistral route, always a 404.
INFERENCE_SUBPATH = RouteRule("", frozenset(), Policy.ACCOUNT, "below an inference route: no such route")
INFERENCE = (Policy.CACHED, Policy.PASSED)


def rule_for(method: str, subpath: str) -> RouteRule:
    """The rule for `method /v1/<subpath>` (subpath without the leading /v1/). Inference routes (cached or
    passed) match their exact path only; account routes match their sub-paths too."""
    path = subpath.strip("/")
    for rule in ROUTES:
        inference = rule.policy in INFERENCE
        if path.startswith(rule.prefix + "/") and inference:
            return INFERENCE_SUBPATH
        if (path == rule.prefix or (path.startswith(rule.prefix + "/") and not inference)) and (
            not rule.methods or method.upper() in rule.methods
        ):
            return rule
    return UNLISTED
