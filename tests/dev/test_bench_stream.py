"""The benchmark's streaming figures (gateway_dev.bench.streaming) in a fast mode: a few iterations of each, so a
change that breaks the measurement code shows up in `make test`. Nothing here checks how fast anything is."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from gateway_dev.bench.streaming import cold, miss, replay
from gateway_dev.cloud.template import Template
from mistral_gateway.flow import answers


def test_a_streamed_miss_is_measured_step_by_step_against_the_emulator(http_gateway: str, emulator: Any) -> None:
    from mistral_gateway.flow import checks, live_stream, streaming
    from mistral_gateway.policies import quota
    from mistral_gateway.upstream import mistral as upstream

    wrapped = [
        (streaming, "completion_stream"), (answers, "look_up"), (checks, "validate"), (quota.Budgets, "spending"),
        (upstream, "open_stream"), (live_stream.LiveStream, "_forward"),
    ]  # fmt: skip
    originals = [getattr(owner, name) for owner, name in wrapped]
    # When the benchmark measures two paced streamed misses through the local HTTP gateway
    measured = miss.streamed_miss(http_gateway, None, emulator, "smoke", 2, events=12, gap_s=0.01, warmup=0)
    # Then each answer was forwarded whole (12 events and [DONE]), with a floor sample per request
    assert measured.events == 13
    assert (
        len(measured.gateway_first.samples) == len(measured.floor_first.samples) == len(measured.overhead.samples) == 2
    )
    # And the steps account for the whole first-event time, request by request
    assert set(measured.phases) == {name for name, _ in miss.PHASES}
    for i, first in enumerate(measured.gateway_first.samples):
        assert math.isclose(sum(measured.phases[name].samples[i] for name in measured.phases), first, abs_tol=1e-6)
    # And the gateway's functions are no longer wrapped afterwards: every one of them is the original again
    assert [getattr(owner, name) for owner, name in wrapped] == originals
    assert not hasattr(answers.look_up, "__wrapped__") and not hasattr(streaming.completion_stream, "__wrapped__")
    assert emulator.stream_delay == 0.0 and emulator.answer_words == 0


def test_a_cached_stream_is_replayed_with_its_original_events(http_gateway: str, emulator: Any) -> None:
    replayed = replay.stream_replay(
        http_gateway, None, emulator, os.environ["CACHE_TABLE_NAME"], "smoke", 2, events=12, warmup=0
    )
    assert replayed.events == replayed.original_events == 13 and replayed.bytes_equal
    samples = (
        replayed.hit_first, replayed.hit_total, replayed.floor_first, replayed.hit_first_kept, replayed.floor_first_kept
    )  # fmt: skip
    assert [len(values.samples) for values in samples] == [2, 2, 2, 2, 2]


def test_the_streaming_function_cold_start_runs_fresh_uvicorn_processes(
    template: Template, emulator: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    from gateway_dev.cloud.resources import create_resources
    from gateway_dev.runner.moto_process import start_moto

    # Given a moto server the fresh processes can reach, with the template's table and secret
    moto_url, stop_moto = start_moto()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
        create_resources(template, mistral_api_key=emulator.api_key)
        env = {**os.environ, "MISTRAL_SERVER_URL": emulator.url}
        # When one round of cold starts runs (floor, hit, miss)
        started = cold.stream_cold_starts(
            template, env, os.environ["CACHE_TABLE_NAME"], "smoke", runs=1, warmup=False, profile=False,
            floor_dir=tmp_path,
        )  # fmt: skip
    finally:
        stop_moto()
    # Then each answered, the hit from the cache and the miss from the emulator
    assert [(run.status, run.cache) for run in started.hit] == [(200, "HIT")]
    assert [(run.status, run.cache) for run in started.miss] == [(200, "MISS")]
    assert [run.status for run in started.floor] == [200]
    assert all(run.ready_ms <= run.answered_ms for run in started.floor + started.hit + started.miss)
