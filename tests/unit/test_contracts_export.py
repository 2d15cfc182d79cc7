"""The published contracts (docs/contracts) are what the code says: change a Struct, re-export."""

from __future__ import annotations

from pathlib import Path

from flint.contracts.export import export

PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "contracts"


def test_exported_schemas_match_the_code(tmp_path):
    fresh = {p.relative_to(tmp_path): p.read_text() for p in export(tmp_path)}
    published = {p.relative_to(PUBLISHED): p.read_text() for p in PUBLISHED.rglob("*") if p.is_file()}
    stale = sorted(str(k) for k in fresh if published.get(k) != fresh[k])
    extra = sorted(str(k) for k in published if k not in fresh)
    assert not stale and not extra, (
        f"docs/contracts is out of date ({stale or extra}): run `flint contracts export` and commit the result"
    )


def test_every_event_kind_has_a_schema_with_its_document():
    import json

    doc = json.loads((PUBLISHED / "schemas" / "event-domain.json").read_text())
    assert doc["properties"]["kind"] == {"const": "domain"}
    assert "VM" in doc["$defs"] and "id" in doc["$defs"]["VM"]["properties"]
