"""`python -m gateway_dev.bench [--smoke] [--work DIR] [--doc FILE]`: measure, print the figures table, write the
generated blocks of docs/benchmarks.md (between its markers) and the raw numbers to .bench/results.json."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gateway_dev.bench.report.document import fill
from gateway_dev.bench.report.results import results_json
from gateway_dev.bench.report.rows import all_rows, render
from gateway_dev.bench.report.tables import BLOCKS
from gateway_dev.bench.run import PEERS, measure
from gateway_dev.bench.settings import FULL, SMOKE, Paths
from gateway_dev.bench.stack import progress


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway_dev.bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="every measurement once or twice, no layer build")
    parser.add_argument("--work", type=Path, default=Paths.work, help="where raw results and scratch files go")
    parser.add_argument("--doc", type=Path, default=Paths.doc, help="the Markdown file whose blocks are rewritten")
    parser.add_argument(
        "--peers", default="", help="comma-separated peer proxies measured side by side (litellm), e.g. PEERS=litellm"
    )
    args = parser.parse_args(argv)
    paths = Paths(work=args.work.resolve(), doc=args.doc.resolve())
    document = paths.doc.read_text()
    fill(document, dict.fromkeys(BLOCKS, ""))  # the markers are checked before minutes of measuring
    peers = tuple(name.strip() for name in args.peers.split(",") if name.strip())
    unknown = set(peers) - set(PEERS)
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(sorted(unknown))}: known are {', '.join(PEERS)}")
    run = measure(SMOKE if args.smoke else FULL, paths, peers)
    paths.results.write_text(json.dumps(results_json(run), indent=2, default=str) + "\n")
    paths.doc.write_text(fill(document, {name: block(run) for name, block in BLOCKS.items()}))
    print(render(all_rows(run)))
    progress(f"done in {run.seconds:.0f} s; wrote {paths.doc} and {paths.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
