"""`python -m gateway_dev.bench` end to end in its smoke mode (every measurement once or twice, no layer build), and
the pieces that turn numbers into the document. Nothing here checks how fast anything is: the bench measures that."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway_dev.bench import cost
from gateway_dev.bench.importtime import import_profile
from gateway_dev.bench.layer import measure_layer, requirement_closure
from gateway_dev.bench.report.document import fill, marker_names
from gateway_dev.bench.report.tables import BLOCKS
from gateway_dev.bench.settings import MODEL, Paths
from gateway_dev.cloud.template import ROOT
from mistral_gateway.platform import economics

FIGURES = [str(number) for number in range(1, 15)]


def outside_markers(text: str) -> str:
    return re.sub(r"<!-- bench:begin ([\w-]+) -->.*?<!-- bench:end \1 -->", "", text, flags=re.DOTALL)


def block(text: str, name: str) -> str:
    match = re.search(rf"<!-- bench:begin {name} -->\n(.*?)\n<!-- bench:end {name} -->", text, re.DOTALL)
    assert match, name
    return match.group(1)


def test_a_smoke_run_measures_every_figure_and_rewrites_only_the_tables(tmp_path: Path) -> None:
    # Given a copy of the hand-written document
    original = Paths().doc.read_text()
    doc = tmp_path / "benchmarks.md"
    doc.write_text(original)
    # When the benchmark runs in its smoke mode
    done = subprocess.run(
        [sys.executable, "-m", "gateway_dev.bench", "--smoke", "--work", str(tmp_path / "work"), "--doc", str(doc)],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # Then it printed the figures table, one row or more per figure
    printed = {match for match in re.findall(r"^\| (\d+)\. ", done.stdout, re.MULTILINE)}
    assert sorted(printed, key=int) == FIGURES
    # And the document kept its prose and got every block filled
    written = doc.read_text()
    assert outside_markers(written) == outside_markers(original)
    assert sorted(marker_names(written)) == sorted(BLOCKS)
    assert all(block(written, name).strip() for name in BLOCKS)
    figures = block(written, "figures")
    assert {match for match in re.findall(r"^\| (\d+)\. ", figures, re.MULTILINE)} == set(FIGURES)
    assert re.search(r"\| 6\. Layer size, unzipped +\| not measured +\|", figures)  # no PyPI in tests
    # And the raw numbers and pyperf's own file are there, the cold starts one value per fresh process
    results = json.loads((tmp_path / "work" / "results.json").read_text())
    assert {row["figure"].split(".")[0] for row in results["table"]} == set(FIGURES)
    assert results["cold_start"]["hit"]["wall_ms"]["n"] == results["cold_start"]["hit"]["in_process_ms"]["n"] == 1
    pyperf_file = json.loads((tmp_path / "work" / "cold-starts.pyperf.json").read_text())
    assert sorted(bench["metadata"]["name"] for bench in pyperf_file["benchmarks"]) == ["floor", "hit", "miss"]


def test_filling_a_document_replaces_only_what_is_between_its_markers() -> None:
    text = "prose \\d stays\n<!-- bench:begin a -->\nold\n<!-- bench:end a -->\nmore prose\n"
    assert fill(text, {"a": "| new \\1 |"}) == (
        "prose \\d stays\n<!-- bench:begin a -->\n| new \\1 |\n<!-- bench:end a -->\nmore prose\n"
    )


def test_a_document_and_the_generator_must_name_the_same_blocks() -> None:
    text = "<!-- bench:begin a -->\n<!-- bench:end a -->\n"
    with pytest.raises(ValueError, match="no marker for \\['b'\\]"):
        fill(text, {"a": "", "b": ""})
    with pytest.raises(ValueError, match="no block for \\['a'\\]"):
        fill(text, {})


def test_the_committed_document_has_a_marker_for_every_generated_block() -> None:
    assert sorted(marker_names(Paths().doc.read_text())) == sorted(BLOCKS)


def test_the_benchmarks_prose_states_no_measured_time() -> None:
    # Times are measured, so they go stale: outside the generated blocks the page explains them, it quotes none.
    prose = outside_markers(Paths().doc.read_text())
    assert not re.findall(r"\d[\d,.]*\s?(?:ms|milliseconds)\b", prose)


def test_the_readme_copies_no_figure_and_links_to_the_generated_tables() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/benchmarks.md" in readme
    # A measured time or size in the README would go stale: they live in docs/benchmarks.md only.
    assert not re.findall(r"~\s?\d+\s?(?:ms|MB)\b", readme)


def test_the_cost_model_prices_tokens_from_the_gateways_own_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(economics.LIST_PRICES, MODEL, (1.0, 2.0))
    assert cost.mistral_prices() == (1.0 / 1e6, 2.0 / 1e6)
    assert cost.tokens_per_request() == pytest.approx((cost.TOKENS_IN * 1.0 + cost.TOKENS_OUT * 2.0) / 1e6)


def test_an_import_profile_keeps_the_costliest_third_party_imports() -> None:
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       100 |        100 | json",
            "import time:       200 |        300 | gateway_dev",
            "import time:       500 |       2000 |   boto3.session",
            "import time:      1000 |       5000 | boto3",
            "import time:      3000 |       9000 |   mistralai.client",
            "import time:      1000 |      12000 | mistralai",
        ]
    )
    profile = import_profile(stderr)
    assert profile.top_level == [("mistralai", 12.0), ("boto3", 5.0)]
    assert profile.inside == [("mistralai.client", 9.0), ("boto3.session", 2.0)]


def test_a_layer_is_sized_by_distribution_against_the_sdks_closure(tmp_path: Path) -> None:
    python = tmp_path / "layer" / "python"

    def distribution(name: str, requires: list[str], size: int) -> None:
        info = python / f"{name}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("".join(f"Requires-Dist: {line}\n" for line in requires))
        (python / name).mkdir()
        (python / name / "__init__.py").write_bytes(b"x" * size)
        files = [f"{name}/__init__.py", f"{info.name}/METADATA", f"{info.name}/RECORD"]
        (info / "RECORD").write_text("".join(f"{path},,\n" for path in files))

    distribution("mistralai", ["httpx2>=1", "extra-thing; extra == 'agents'"], 7000)
    distribution("httpx2", [], 2000)
    distribution("aws_lambda_powertools", [], 3000)
    (python / "loose.pyc").write_bytes(b"x" * 50)
    assert requirement_closure(python, "mistralai") == {"mistralai", "httpx2"}
    layer = measure_layer(tmp_path / "layer")
    sizes = dict(layer.packages)
    assert [name for name, _ in layer.packages] == ["mistralai", "aws_lambda_powertools", "httpx2", "loose.pyc"]
    assert layer.unzipped_bytes == sum(path.stat().st_size for path in python.rglob("*") if path.is_file())
    assert (
        layer.sdk_bytes
        == sizes["mistralai"] + sizes["httpx2"]
        == layer.unzipped_bytes - sizes["aws_lambda_powertools"] - 50
    )
    assert layer.added == ["aws_lambda_powertools", "loose.pyc"]
    assert 0 < layer.zipped_bytes < layer.unzipped_bytes + 10_000
