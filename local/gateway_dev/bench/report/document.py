"""Writes generated blocks into a hand-written Markdown file, between `<!-- bench:begin NAME -->` and
`<!-- bench:end NAME -->`; everything outside the markers is left as it is."""

from __future__ import annotations

import re

BEGIN, END = "<!-- bench:begin {name} -->", "<!-- bench:end {name} -->"


def marker_names(text: str) -> list[str]:
    return re.findall(r"<!-- bench:begin ([\w-]+) -->", text)


def fill(text: str, blocks: dict[str, str]) -> str:
    """`text` with each block's content replaced. The document and the generator must name the same blocks."""
    names = marker_names(text)
    if sorted(names) != sorted(blocks):
        missing, unknown = sorted(set(blocks) - set(names)), sorted(set(names) - set(blocks))
        raise ValueError(f"markers and generated blocks differ: no marker for {missing}, no block for {unknown}")
    for name, content in blocks.items():
        pattern = re.compile(re.escape(BEGIN.format(name=name)) + r".*?" + re.escape(END.format(name=name)), re.DOTALL)
        replacement = f"{BEGIN.format(name=name)}\n{content.strip()}\n{END.format(name=name)}"
        text, count = pattern.subn(replacement.replace("\\", "\\\\"), text)
        if count != 1:
            raise ValueError(f"block {name!r}: expected one begin/end pair, found {count}")
    return text
