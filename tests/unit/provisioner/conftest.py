"""Golden files and a fake libvirt connection for the provisioner's unit tests.

``golden.check(model_or_text, "name-out.xml")`` compares with tests/unit/provisioner/golden; run with
``FLINT_REGEN_GOLDEN=1`` to rewrite the ``-out`` files after a deliberate change (then review the diff).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lxml import etree

GOLDEN = Path(__file__).parent / "golden"
XML_GOLDEN = Path(__file__).parents[1] / "xml" / "golden"  # host capabilities captured from libvirt 9.0
SCHEMAS = Path("/usr/share/libvirt/schemas")


class Golden:
    def read(self, name: str) -> str:
        path = GOLDEN / name if (GOLDEN / name).exists() else XML_GOLDEN / name
        return path.read_text()

    def check(self, model_or_text, name: str) -> str:
        text = model_or_text if isinstance(model_or_text, str) else model_or_text.to_xml()
        path = GOLDEN / name
        if os.environ.get("FLINT_REGEN_GOLDEN") and name.endswith("-out.xml"):
            path.write_text(text)
        assert text == path.read_text(), f"{name} differs from the builder's XML"
        return text

    def validate(self, text: str, schema: str = "domain") -> None:
        """Validate against libvirt's own RelaxNG schema (skipped where libvirt is not installed)."""
        rng_file = SCHEMAS / f"{schema}.rng"
        if not rng_file.exists():
            pytest.skip(f"libvirt schema {rng_file} not installed")
        rng = etree.RelaxNG(etree.parse(str(rng_file)))
        assert rng.validate(etree.fromstring(text.encode())), f"{schema}.rng rejects the XML: {rng.error_log}"


@pytest.fixture
def golden() -> Golden:
    return Golden()
