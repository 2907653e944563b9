"""What a run leaves behind: the figures table (`rows`), the generated blocks of docs/benchmarks.md (`tables`,
written between markers by `document`) and the raw numbers in .bench/results.json (`results`)."""
