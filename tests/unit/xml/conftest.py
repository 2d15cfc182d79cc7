"""Golden-file helpers for the flint.xml tests.

``golden.check(model_or_text, "name-out.xml")`` compares with the file; run with ``FLINT_REGEN_GOLDEN=1``
to rewrite the ``-out`` files after a deliberate change (then review the diff).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lxml import etree

GOLDEN = Path(__file__).parent / "golden"
SCHEMAS = Path("/usr/share/libvirt/schemas")


class Golden:
    def read(self, name: str) -> str:
        return (GOLDEN / name).read_text()

    def check(self, model_or_text, name: str) -> str:
        text = model_or_text if isinstance(model_or_text, str) else model_or_text.to_xml()
        path = GOLDEN / name
        if os.environ.get("FLINT_REGEN_GOLDEN") and name.endswith("-out.xml"):
            path.write_text(text)
        assert text == path.read_text(), f"{name} differs from the model's XML"
        return text

    def validate(self, text: str, schema: str) -> None:
        """Validate against libvirt's own RelaxNG schema (skipped where libvirt is not installed)."""
        rng_file = SCHEMAS / f"{schema}.rng"
        if not rng_file.exists():
            pytest.skip(f"libvirt schema {rng_file} not installed")
        rng = etree.RelaxNG(etree.parse(str(rng_file)))
        doc = etree.fromstring(text.encode())
        assert rng.validate(doc), f"{schema}.rng rejects the XML: {rng.error_log}"

    def canonical(self, text: str) -> str:
        """C14N form: equal for documents that differ only in quoting and indentation."""
        parser = etree.XMLParser(remove_blank_text=True)
        return etree.tostring(etree.fromstring(text.encode(), parser), method="c14n2", strip_text=True).decode()


@pytest.fixture
def golden() -> Golden:
    return Golden()
