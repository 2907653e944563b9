"""Work after the response: `later` on its own, and the internal extension against a Runtime API on 127.0.0.1.

The fake Runtime API (tests/runtime_api.py, the `runtime_api` fixture) speaks the Extensions API's wire format;
the test plays the Lambda service and the runtime: it sends each INVOKE event, calls the wrapped handler, and
watches when the extension asks for its next event.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any

from mistral_gateway.platform import after_response


def test_later_runs_work_at_once_when_nothing_collects_it() -> None:
    ran: list[str] = []
    after_response.later(lambda: ran.append("now"))
    assert ran == ["now"]


def test_collected_work_waits_for_run_and_one_failure_does_not_stop_the_rest() -> None:
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("a bug in one piece")

    with after_response.collected() as work:
        after_response.later(lambda: ran.append("first"))
        after_response.later(broken)
        after_response.later(lambda: ran.append("third"))
        assert ran == []
    after_response.run(work)
    assert ran == ["first", "third"]


def test_work_handed_to_later_while_running_runs_at_once() -> None:
    ran: list[str] = []
    with after_response.collected() as work:
        after_response.later(lambda: after_response.later(lambda: ran.append("nested")))
    after_response.run(work)
    assert ran == ["nested"]


def test_a_batchs_worker_threads_collect_into_the_requests_work() -> None:
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    with after_response.collected() as work:
        contexts = [contextvars.copy_context() for _ in range(8)]  # as observability.item_context copies them
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda ctx: ctx.run(after_response.later, lambda: None), contexts))
    assert len(work) == 8


# --- the internal extension against a fake Runtime API -------------------------------------------------------


@dataclass
class Context:
    aws_request_id: str


def answered_with_work_done_first() -> bool:
    """Whether a wrapped handler that leaves a store for later has it done by the time it returns."""
    ran: list[str] = []

    @after_response.answered_first
    def handler(event: Any, context: Any) -> str:
        after_response.later(lambda: ran.append("stored"))
        return "the answer"

    return handler({}, Context("request-1")) == "the answer" and ran == ["stored"]


def test_the_extension_runs_the_work_after_the_handler_returned_then_asks_for_the_next_event(runtime_api) -> None:
    # Given the extension registered with the Runtime API, and a handler that leaves a store for later
    api, address = runtime_api
    extension = after_response.start_extension({"AWS_LAMBDA_RUNTIME_API": address})
    assert extension is not None
    assert api.registered == [{"name": after_response.EXTENSION_NAME, "events": ["INVOKE"]}]
    assert api.wait_asked(1)  # its init is done: it waits for the first event
    store_may_run, stored = threading.Event(), threading.Event()
    order: list[str] = []

    def store() -> None:
        store_may_run.wait(5)
        order.append("stored")
        stored.set()

    @after_response.answered_first
    def handler(event: Any, context: Any) -> str:
        after_response.later(store)
        return "the answer"

    # When Lambda sends an invocation and the handler returns
    api.invoke("request-1")
    assert handler({}, Context("request-1")) == "the answer"
    order.append("answered")
    # Then the response is out while the store has not run, and the extension has not asked for more
    assert not api.wait_asked(2, timeout=0.2)
    assert order == ["answered"] and api.asked == 1
    # When the store runs
    store_may_run.set()
    assert stored.wait(5)
    # Then only after it the extension asks for the next event: the container takes no request before
    assert api.wait_asked(2)
    assert order == ["answered", "stored"]


def test_each_invocation_hands_over_its_own_work_even_when_the_handler_raises(runtime_api) -> None:
    api, address = runtime_api
    after_response.start_extension({"AWS_LAMBDA_RUNTIME_API": address})
    ran: list[str] = []

    @after_response.answered_first
    def handler(event: Any, context: Any) -> None:
        after_response.later(lambda: ran.append(context.aws_request_id))
        if event.get("fail"):
            raise RuntimeError("the handler failed after collecting work")

    for number, event in enumerate([{}, {"fail": True}, {}], start=1):
        api.invoke(f"request-{number}")
        with contextlib.suppress(RuntimeError):
            handler(event, Context(f"request-{number}"))
        assert api.wait_asked(number + 1)  # the extension finished this invocation before the next
    assert ran == ["request-1", "request-2", "request-3"]


def test_a_refused_registration_leaves_the_work_to_run_before_the_response(runtime_api) -> None:
    # Given a Runtime API that refuses the extension
    api, address = runtime_api
    api.refuse_registration = True
    # When the function starts
    assert after_response.start_extension({"AWS_LAMBDA_RUNTIME_API": address}) is None
    # Then a handler's work runs before it returns, as it did before the extension
    assert answered_with_work_done_first()


def test_a_registration_answered_with_garbage_leaves_the_function_starting_without_the_extension(runtime_api) -> None:
    # Given a Runtime API whose answer to the registration is not HTTP
    api, address = runtime_api
    api.garble_registration = True
    # When the function starts (this runs at import: an exception here would fail the container's init)
    # Then it starts without the extension, and work runs before the response
    assert after_response.start_extension({"AWS_LAMBDA_RUNTIME_API": address}) is None
    assert api.registered and answered_with_work_done_first()


def test_outside_lambda_no_extension_is_registered() -> None:
    assert after_response.start_extension({}) is None


def test_when_the_runtime_api_fails_the_extension_stops_and_handlers_run_their_work_themselves(runtime_api) -> None:
    # Given a running extension
    api, address = runtime_api
    extension = after_response.start_extension({"AWS_LAMBDA_RUNTIME_API": address})
    assert extension is not None and api.wait_asked(1)
    # When its request for the next event fails
    api.events.put(None)
    extension._thread.join(30)  # it ends only after reporting exit/error
    # Then it says so to Lambda (which resets the container), and a handler meanwhile runs its work itself
    assert not extension.alive and api.exit_errors == ["Extension.Stopped"]
    assert answered_with_work_done_first()


def test_the_streaming_app_hands_every_invocation_over_work_or_none(runtime_api) -> None:
    # Given the extension, and the streaming app's invocations as the Web Adapter sends them
    api, address = runtime_api
    after_response.start_extension({"AWS_LAMBDA_RUNTIME_API": address})
    assert api.wait_asked(1)
    ran: list[str] = []
    # When one has nothing to store (a stream, whose store ran before [DONE]), one a store, and one arrives
    # without the adapter's request id
    api.invoke("request-1")
    after_response.after_sent("request-1", [])
    assert api.wait_asked(2)
    api.invoke("request-2")
    after_response.after_sent("request-2", [lambda: ran.append("stored")])
    assert api.wait_asked(3)
    api.invoke("request-3")
    after_response.after_sent("", [lambda: ran.append("stored without an id")])
    # Then each invocation ended once its own work ran, the one without an id too
    assert api.wait_asked(4) and ran == ["stored", "stored without an id"]


def test_outside_lambda_the_streaming_apps_work_runs_on_a_thread_after_the_response() -> None:
    may_run, ran = threading.Event(), []

    def store() -> None:
        may_run.wait(5)
        ran.append("stored")

    after_response.after_sent("request-1", [store])  # returns at once: the event loop is not held
    assert ran == []
    may_run.set()
    assert after_response.settle() and ran == ["stored"]


def test_outside_lambda_settle_waits_for_work_collected_before_the_response_was_handed_over() -> None:
    # Given the streaming app outside Lambda, collecting a store while it still writes its response
    assert after_response.on_threads() and after_response.settle()
    ran: list[str] = []
    with after_response.collected(counted=after_response.on_threads()) as work:
        try:
            after_response.later(lambda: ran.append("stored"))
            # When a client that already has the response settles before the app hands the work over
            # Then it is told the store is still to come, not that everything has landed
            assert after_response._ON_THREADS == 1
            assert after_response.settle(timeout=0.05) is False
        finally:
            after_response.after_sent("request-1", work)
    # And once handed over, the store runs and settle sees it land
    assert after_response.settle() and ran == ["stored"]


def test_counted_work_that_is_never_handed_to_a_thread_does_not_hold_settle() -> None:
    # Given work collected to run on a thread, when the collection ends without handing it over (the app
    # failed before its hand-over, or an extension took the work)
    ran: list[str] = []
    try:
        with after_response.collected(counted=True):
            after_response.later(lambda: ran.append("stored"))
            raise RuntimeError("the hand-over never came")
    except RuntimeError:
        pass
    # Then settle does not wait for it, and it did not run
    assert after_response.settle(timeout=0.05) and ran == []


def test_work_waits_for_the_response_only_where_something_will_run_it_after(runtime_api) -> None:
    # Outside Lambda the local runner or the streaming app runs it; in Lambda only a live extension does
    assert after_response.can_wait_for_the_response({})
    assert not after_response.can_wait_for_the_response({"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"})
    _, address = runtime_api
    assert after_response.start_extension({"AWS_LAMBDA_RUNTIME_API": address}) is not None
    assert after_response.can_wait_for_the_response({"AWS_LAMBDA_RUNTIME_API": address})
