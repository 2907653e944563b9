"""The pyperf program that times whole cold-start processes: one `Runner.bench_command` per kind (floor, hit,
miss), each value one fresh process from spawn to exit, as hyperfine would time it.

`python -m gateway_dev.bench.pyperf_cold --spec SPEC.json [pyperf options]`; SPEC is {"commands": {name: argv}}.
pyperf re-runs this module as its workers (`--worker`), which is why it is a program of its own."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pyperf

MODULE = "gateway_dev.bench.pyperf_cold"


def forward_spec(command: list[str], args: argparse.Namespace) -> None:
    command.extend(("--spec", args.spec))


def main() -> None:
    runner = pyperf.Runner(program_args=("-m", MODULE), add_cmdline_args=forward_spec)
    runner.argparser.add_argument("--spec", required=True, help="JSON file: {'commands': {name: argv}}")
    args = runner.parse_args()
    spec = json.loads(Path(args.spec).read_text())
    for name, command in spec["commands"].items():
        runner.bench_command(name, command)


if __name__ == "__main__":
    main()
