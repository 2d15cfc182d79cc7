"""Flint's own ``<metadata>`` element in domain XML: ``<flint:vm><flint:created-by>…</flint:vm>``.

Flat string values keyed by element name. Use the Domain helpers when editing a whole domain's XML, or
``flint_metadata_xml``/``parse_flint_metadata`` with ``virDomainSetMetadata``/``virDomainGetMetadata``
(``VIR_DOMAIN_METADATA_ELEMENT``, key ``METADATA_PREFIX``, uri ``FLINT_NS``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lxml import etree

from .base import FLINT_NS, parse_xml

METADATA_PREFIX = "flint"
ROOT = f"{{{FLINT_NS}}}vm"
_KEY = re.compile(r"[a-z][a-z0-9-]{0,62}")


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(f"metadata key {key!r} is invalid: use lowercase letters, digits and '-'")
    return key


def read_metadata(element: etree._Element | None) -> dict[str, str]:
    """The ``{key: text}`` of a ``<flint:vm>`` element (empty when there is none)."""
    if element is None:
        return {}
    return {etree.QName(c).localname: c.text or "" for c in element.iterchildren(tag=f"{{{FLINT_NS}}}*")}


def update_metadata(element: etree._Element, values: Mapping[str, str | None]) -> None:
    """Set each key of ``values`` in ``<flint:vm>``; a ``None`` value removes the key."""
    for key, value in values.items():
        tag = f"{{{FLINT_NS}}}{_check_key(key)}"
        child = element.find(tag)
        if value is None:
            if child is not None:
                element.remove(child)
            continue
        if child is None:
            child = etree.SubElement(element, tag)
        child.text = str(value)


def new_metadata_element(values: Mapping[str, str | None] = {}) -> etree._Element:  # noqa: B006 (read only)
    element = etree.Element(ROOT, nsmap={METADATA_PREFIX: FLINT_NS})
    update_metadata(element, values)
    return element


def flint_metadata_xml(values: Mapping[str, str | None]) -> str:
    """The ``<vm>`` element alone, for ``virDomainSetMetadata``: libvirt wants it without a namespace
    (it puts it in ``FLINT_NS`` under the key ``METADATA_PREFIX`` itself) and refuses one declared here."""
    element = etree.Element("vm")
    for key, value in values.items():
        if value is not None:
            etree.SubElement(element, _check_key(key)).text = str(value)
    return etree.tostring(element, encoding="unicode")


def parse_flint_metadata(xml: str | None) -> dict[str, str]:
    """Parse what ``virDomainGetMetadata`` returns for Flint's namespace (None or empty gives ``{}``)."""
    if not xml:
        return {}
    root = parse_xml(xml)
    if etree.QName(root).localname != "vm":
        return {}
    # libvirt hands the element back with or without the namespace, depending on how it was set
    return {etree.QName(c).localname: c.text or "" for c in root if isinstance(c.tag, str)}
