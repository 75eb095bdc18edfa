"""Every event type and counter is named in one table (realtime/event_types.py): no other
module of the product or its benchmarks spells one out as a string of its own."""

from __future__ import annotations

import ast
from pathlib import Path

from realtime.event_types import COUNTERS, EVENT_TYPES, EVENTS

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "realtime" / "event_types.py"
NAMES = ({t.name for t in EVENT_TYPES} | {t.live for t in EVENT_TYPES if t.live}
         | {t.today for t in EVENT_TYPES if t.today} | set(COUNTERS)) - {EVENTS}


def literal_names(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in NAMES]


def test_no_module_but_the_table_names_an_event_type_or_counter():
    found = {
        str(path.relative_to(ROOT)): hits
        for folder in ("app", "realtime", "rollups", "bench")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != TABLE and (hits := literal_names(path))
    }
    assert found == {}


def test_the_scan_sees_a_literal_name(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('COLUMN = "whatsapp_clicks"\n')
    assert literal_names(sample) == [(1, "whatsapp_clicks")]
