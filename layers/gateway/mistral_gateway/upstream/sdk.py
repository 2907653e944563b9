"""The mistralai SDK, imported with only the request hooks the gateway's calls use.

The SDK registers seven hook classes on every client, from a module it imports with itself
(`mistralai.client._hooks.registration`, which its generator leaves "free to be modified"). Five serve what the
gateway never does through the SDK: workflows (payload encoding, stream errors, trace propagation into an
execution), OpenTelemetry spans (and the SDK's opt-in telemetry), and a Kubernetes service-account token in
place of the API key. Importing them loads OpenTelemetry and `mistralai.extra.workflows`, about two fifths of
the SDK's import and so of every cold miss (docs/decisions.md, "The SDK's hooks"). So every gateway import of
the SDK goes through `load()`, which puts the gateway's registration in their place first: the SDK's own
user-agent and deprecation-warning hooks.

When something else imported the SDK first (a test's client, say), `load()` leaves its registration alone: the
calls are the same, with the SDK's other hooks doing nothing for them.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

REGISTRATION = "mistralai.client._hooks.registration"
# The SDK's hooks, by class name: what the gateway keeps, and what it leaves out and why. A test holds these
# two sets to the SDK's own registration, so a new SDK hook is a decision, not a surprise.
KEPT = ("CustomUserAgentHook", "DeprecationWarningHook")
LEFT_OUT = {
    "ServiceAccountAuthHook": "replaces the API key with a Kubernetes token when MISTRAL_SA_TOKEN_PATH is set",
    "TraceparentInjectionHook": "puts the OpenTelemetry trace into workflow executions",
    "TracingHook": "OpenTelemetry spans; the gateway traces with X-Ray through Powertools",
    "WorkflowEncodingHook": "encodes workflow payloads",
    "WorkflowStreamErrorHook": "reads the error events of workflow streams",
}


def load() -> ModuleType:
    """`mistralai.client`, imported with the gateway's hook registration unless it was imported before."""
    if "mistralai.client" not in sys.modules:
        sys.modules.setdefault(REGISTRATION, _registration())
    import mistralai.client

    return mistralai.client


def models() -> ModuleType:
    """The SDK's request and answer models (`mistralai.client.models`)."""
    return load().models  # type: ignore[no-any-return]


def _registration() -> ModuleType:
    from importlib.machinery import ModuleSpec

    registration = ModuleType(REGISTRATION, "The gateway's hooks for the mistralai SDK (mistral_gateway.upstream.sdk).")
    registration.__spec__ = ModuleSpec(REGISTRATION, None)  # so importlib.util.find_spec can read it
    registration.init_hooks = init_hooks  # type: ignore[attr-defined]
    registration.__all__ = []  # type: ignore[attr-defined]  # the SDK's `from .registration import *` takes nothing
    return registration


def init_hooks(hooks: Any) -> None:
    """What the SDK calls on every client it builds (`hooks`: its `SDKHooks`): register the hooks the gateway
    keeps, each as the same kind of hook the SDK's own registration makes it."""
    from mistralai.client._hooks.custom_user_agent import CustomUserAgentHook
    from mistralai.client._hooks.deprecation_warning import DeprecationWarningHook

    hooks.register_before_request_hook(CustomUserAgentHook())
    hooks.register_after_success_hook(DeprecationWarningHook())
