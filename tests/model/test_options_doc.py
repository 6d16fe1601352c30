"""``docs/configs.md`` lists every ``Isstad`` option (the dataclass fields), and only options that exist."""

from __future__ import annotations

import re
from pathlib import Path

from isstad_plugin.model.options import option_defaults

DOC = Path(__file__).parents[2] / "docs" / "configs.md"
COMPONENTS = {"pre_processor", "post_processor", "evaluator", "visualizer"}  # anomalib's arguments, not options


def _documented() -> set[str]:
    text = DOC.read_text()
    section = text[text.index("## `Isstad` options") : text.index("## Trainer and data settings")]
    names: set[str] = set()
    for row in re.findall(r"^\| ([^|]+) \|", section, flags=re.MULTILINE):
        names |= set(re.findall(r"`([a-z0-9_]+)`", row))
    return names - COMPONENTS


def test_every_option_is_documented_and_every_documented_option_exists():
    options = set(option_defaults())
    assert sorted(options - _documented()) == [], "options missing from docs/configs.md"
    assert sorted(_documented() - options) == [], "docs/configs.md names options that do not exist"
