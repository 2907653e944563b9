"""The mistralai SDK's hooks as the gateway registers them (upstream/sdk.py), held to the SDK's own list. That a
cold miss's client has only these is tests/integration/test_cold_paths.py's."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mistral_gateway.upstream import sdk


class RecordedHooks:
    """What a registration registers: (kind, hook class name) pairs."""

    def __init__(self) -> None:
        self.registered: set[tuple[str, str]] = set()

    def _recorder(kind: str) -> Any:  # type: ignore[misc]
        def record(self: RecordedHooks, hook: Any) -> None:
            self.registered.add((kind, type(hook).__name__))

        return record

    register_sdk_init_hook = _recorder("sdk_init")
    register_before_request_hook = _recorder("before_request")
    register_after_success_hook = _recorder("after_success")
    register_after_error_hook = _recorder("after_error")

    @property
    def names(self) -> set[str]:
        return {name for _, name in self.registered}


def shipped_registration() -> Any:
    """The SDK's own registration module, loaded from its file whatever this process imported first."""
    import mistralai

    path = Path(mistralai.__path__[0]) / "client" / "_hooks" / "registration.py"
    spec = importlib.util.spec_from_file_location("mistralai.client._hooks.registration_as_shipped", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_hook_the_sdk_registers_is_either_kept_or_left_out_with_a_reason() -> None:
    # Given the hooks the installed SDK registers on every client
    shipped = RecordedHooks()
    shipped_registration().init_hooks(shipped)
    # When the gateway's registration runs
    ours = RecordedHooks()
    sdk.init_hooks(ours)
    # Then it registers exactly what it says it keeps, each as the same kind of hook the SDK makes it, and the
    # SDK's list is what the gateway kept and left out: a hook a new SDK adds fails here until someone decides
    assert ours.names == set(sdk.KEPT)
    assert ours.registered == {(kind, name) for kind, name in shipped.registered if name in sdk.KEPT}
    assert shipped.names == set(sdk.KEPT) | set(sdk.LEFT_OUT)
    assert not set(sdk.KEPT) & set(sdk.LEFT_OUT)


def hooks_in_a_fresh_process(first: str) -> dict[str, Any]:
    script = (
        first
        + "\nfrom mistral_gateway.upstream import sdk\n"
        + "client = sdk.load().Mistral(api_key='k', server_url='http://127.0.0.1:9')\n"
        + "hooks = client.sdk_configuration.__dict__['_hooks']\n"
        + "names = {type(h).__name__ for h in hooks.before_request_hooks + hooks.after_success_hooks}\n"
        + "print(json.dumps({'hooks': sorted(names), 'otel': 'opentelemetry' in sys.modules}))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", "import json, sys\n" + script], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return report


def test_an_sdk_imported_before_the_gateway_keeps_its_own_registration() -> None:
    # Given a process that imported the SDK itself (a caller's client in a test, say)
    report = hooks_in_a_fresh_process("import mistralai.client")
    # When the gateway loads it: the SDK's own registration stays, with all its hooks
    assert set(report["hooks"]) >= set(sdk.KEPT) | {"TracingHook"}
    assert report["otel"] is True
