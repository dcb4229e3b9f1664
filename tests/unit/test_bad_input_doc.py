"""docs/bad-input.md is the rendering of tests/badinput.py."""

from pathlib import Path

import badinput

DOC = Path(__file__).resolve().parents[2] / "docs" / "bad-input.md"


def test_doc_is_the_rendered_table():
    assert DOC.exists() and DOC.read_text() == badinput.render(), (
        f"docs/bad-input.md is stale; regenerate it: {badinput.REGENERATE}"
    )
