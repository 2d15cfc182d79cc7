"""A tiny declarative base for libvirt XML models.

A model wraps one lxml element and declares each XML field once, as a descriptor with a path relative
to that element: ``Prop("./name")``, ``Prop("./vcpu", int)``, ``Prop("./os/type/@arch")``,
``Prop("./devices/graphics[@type='vnc']/@port")``. Reading never changes the tree; setting creates the
missing elements (in declaration order, so output is deterministic); setting ``None`` removes the field
and prunes the elements it leaves empty. Everything a model does not declare stays in the tree, so a
live domain's XML can be parsed, edited and redefined without losing anything.

Models are pure: no libvirt connection, no I/O. Values only ever enter the tree through lxml APIs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

from lxml import etree

FLINT_NS = "https://flint.dev/xmlns/flint/1"
NS = {"flint": FLINT_NS}
_PARSER = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True, load_dtd=False)
_SEG = re.compile(r"^(?:(\w+):)?([\w.-]+|\*)(?:\[@([\w-]+)='([^']*)'\])?$")
# libvirt size units: b/bytes, KB=1000 but k/KiB=1024, and so on up to exbibytes (case-insensitive)
_UNITS = {"b": 1, "bytes": 1} | {f"{p}{suffix}": base**i for i, p in enumerate("kmgtpe", 1)
                                 for suffix, base in (("b", 1000), ("", 1024), ("ib", 1024))}


class Converter(NamedTuple):
    load: Callable[[str], Any]
    dump: Callable[[Any], str]


YES_NO = Converter(lambda s: s == "yes", lambda v: "yes" if v else "no")
ON_OFF = Converter(lambda s: s == "on", lambda v: "on" if v else "off")
INT = Converter(int, str)
STR = Converter(str, str)


def parse_xml(xml: str | bytes) -> etree._Element:
    """Parse untrusted XML text safely (no entities, no network, blank text dropped)."""
    return etree.fromstring(xml.encode() if isinstance(xml, str) else xml, _PARSER)


def to_bytes(value: int, unit: str | None, default: str = "bytes") -> int:
    """``value`` expressed in libvirt's ``unit`` (b, KiB, MB, G, ...) as a number of bytes."""
    try:
        return value * _UNITS[(unit or default).lower()]
    except KeyError:
        raise ValueError(f"unknown size unit {unit!r}") from None


class _Path:
    """``./a/b[@type='x']/@attr`` split into element steps and a final attribute (or text)."""

    def __init__(self, path: str):
        parts = [p for p in path.split("/") if p not in ("", ".")]
        self.attr = parts.pop()[1:] if parts and parts[-1].startswith("@") else None
        self.steps: list[tuple[str, str | None, str | None]] = []
        for part in parts:
            m = _SEG.match(part)
            if not m:
                raise ValueError(f"unsupported path step {part!r} in {path!r}")
            prefix, tag, pattr, pval = m.groups()
            self.steps.append((f"{{{NS[prefix]}}}{tag}" if prefix else tag, pattr, pval))
        self.xpath = etree.XPath(path, namespaces=NS)
        self.tags = tuple(tag for tag, _, _ in self.steps)

    def walk(self, model: XmlModel, create: bool, steps=None) -> etree._Element | None:
        node = model.node
        for i, (tag, pattr, pval) in enumerate(self.steps if steps is None else steps):
            found = next((c for c in node.iterchildren(tag if tag != "*" else etree.Element)
                          if pattr is None or c.get(pattr) == pval), None)
            if found is None:
                if not create or tag == "*":
                    return None
                found = model.insert(node, etree.Element(tag, nsmap=_nsmap(tag)), self.tags[:i])
                if pattr:
                    found.set(pattr, pval)
            node = found
        return node

    def remove(self, model: XmlModel, node: etree._Element) -> None:
        """Remove ``node`` (found by this path) and the ancestors it leaves empty."""
        parent = node.getparent()
        parent.remove(node)
        self.prune(model, parent, len(self.steps) - 1)

    def prune(self, model: XmlModel, node: etree._Element | None, depth: int) -> None:
        """Remove ``node`` and its ancestors up to the model root while they hold nothing."""
        while node is not None and depth > 0 and node is not model.node:
            pattr = self.steps[depth - 1][1]
            if len(node) or (node.text or "").strip() or set(node.attrib) - {pattr}:
                return
            parent = node.getparent()
            parent.remove(node)
            node, depth = parent, depth - 1


def _nsmap(tag: str) -> dict | None:
    ns = etree.QName(tag).namespace
    return {p: u for p, u in NS.items() if u == ns} or None


class Prop:
    """One XML field: element text or attribute, converted on the way in and out."""

    def __init__(self, path: str, conv: Converter | Callable[[str], Any] = STR, validate=None, doc="",
                 drop_element: bool = False):
        """``drop_element``: setting None removes the attribute's whole element (``<forward>``)."""
        self.path = _Path(path)
        self.conv = conv if isinstance(conv, Converter) else Converter(conv, str)
        self.validate, self.__doc__, self.drop_element = validate, doc or path, drop_element

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, model, owner=None):
        if model is None:
            return self
        found = self.path.xpath(model.node)
        if not found:
            return None
        raw = found[0] if self.path.attr else found[0].text
        return None if raw is None else self.conv.load(str(raw))

    def __set__(self, model, value):
        if value is None:
            node = self.path.walk(model, create=False)
            if node is not None and self.drop_element and node is not model.node:
                self.path.remove(model, node)
            elif node is not None:
                if self.path.attr:
                    node.attrib.pop(self.path.attr, None)
                else:
                    node.text = None
                self.path.prune(model, node, len(self.path.steps))
            return
        if self.validate:
            self.validate(value)
        node = self.path.walk(model, create=True)
        if node is None:
            raise ValueError(f"{self.name}: {self.path.tags[-1]} element missing")
        text = self.conv.dump(value)
        if self.path.attr:
            model.set_attr(node, self.path.attr, text, self.path.tags)
        else:
            node.text = text


class Flag(Prop):
    """An element whose presence is the value (``<acpi/>``, ``<readonly/>``)."""

    def __get__(self, model, owner=None):
        return self if model is None else bool(self.path.xpath(model.node))

    def __set__(self, model, value):
        node = self.path.walk(model, create=bool(value))
        if not value and node is not None:
            self.path.remove(model, node)


class Size(Prop):
    """A ``<x unit='...'>N</x>`` size read in any libvirt unit and written as ``unit``."""

    def __init__(self, path: str, unit: str = "bytes", doc=""):
        super().__init__(path, INT, doc=doc)
        self.unit, self.unit_path = unit, _Path(path + "/@unit")

    def __get__(self, model, owner=None):
        value = super().__get__(model, owner)
        if model is None or value is None:
            return value
        unit = (self.unit_path.xpath(model.node) or [self.unit])[0]
        return to_bytes(value, unit) // to_bytes(1, self.unit)

    def __set__(self, model, value):
        node = self.path.walk(model, create=False)
        if value is None and node is not None:
            node.attrib.pop("unit", None)
        super().__set__(model, value)
        if value is not None:
            model.set_attr(self.path.walk(model, create=False), "unit", self.unit, self.path.tags)


class PropList(Prop):
    """Repeated elements reduced to one value each: ``PropList("./os/boot/@dev")`` -> ``["hd"]``."""

    def __get__(self, model, owner=None):
        if model is None:
            return self
        return [self.conv.load(str(v if self.path.attr else v.text)) for v in self.path.xpath(model.node)]

    def __set__(self, model, values):
        parent = self.path.walk(model, create=True, steps=self.path.steps[:-1])
        tag, pattr, pval = self.path.steps[-1]
        for old in [c for c in parent.iterchildren(tag) if pattr is None or c.get(pattr) == pval]:
            parent.remove(old)
        for value in values or ():
            node = model.insert(parent, etree.Element(tag, nsmap=_nsmap(tag)), self.path.tags[:-1])
            if pattr:
                node.set(pattr, pval)
            if self.path.attr:
                node.set(self.path.attr, self.conv.dump(value))
            else:
                node.text = self.conv.dump(value)
        self.path.prune(model, parent, len(self.path.steps) - 1)


class Children:
    """Repeated child elements, each wrapped in a model: ``Children(Disk, "./devices/disk")``."""

    def __init__(self, cls: type[XmlModel], path: str):
        self.cls, self.path = cls, _Path(path)

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, model, owner=None):
        return self if model is None else ChildList(model, self)


class ChildList(Sequence):
    """A live view of a model's children of one kind; ``append``/``remove``/``clear`` edit the tree."""

    def __init__(self, model: XmlModel, desc: Children):
        self.model, self.desc = model, desc

    def _items(self) -> list:
        return [self.desc.cls(el) for el in self.desc.path.xpath(self.model.node)]

    def __len__(self) -> int:
        return len(self._items())

    def __getitem__(self, index):
        return self._items()[index]

    def __iter__(self):
        # One XPath walk per loop (without this, Python iterates by index and walks n+1 times).
        return iter(self._items())

    def __contains__(self, child) -> bool:
        return any(child == item for item in self._items())

    def append(self, child: XmlModel) -> XmlModel:
        if not isinstance(child, self.desc.cls):
            raise TypeError(f"{self.desc.name} holds {self.desc.cls.__name__}, not {type(child).__name__}")
        parent = self.desc.path.walk(self.model, create=True, steps=self.desc.path.steps[:-1])
        self.model.insert(parent, child.node, self.desc.path.tags[:-1])
        return child

    def remove(self, child: XmlModel) -> None:
        parent = child.node.getparent()
        if parent is None or all(el is not child.node for el in self.desc.path.xpath(self.model.node)):
            raise ValueError(f"{self.desc.name}: not a child of this model")
        self.desc.path.remove(self.model, child.node)

    def clear(self) -> None:
        for child in self._items():
            self.remove(child)


class XmlModel:
    """Base of every model: ``TAG`` is the root element; fields are the descriptors above."""

    TAG: ClassVar[str] = ""
    _rank: ClassVar[dict[tuple, int]]
    _order: ClassVar[list[str]]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._rank, cls._order = {}, [n for k in reversed(cls.__mro__) for n in vars(k)]
        fields = [v for k in reversed(cls.__mro__) for v in vars(k).values() if isinstance(v, Prop | Children)]
        for i, desc in enumerate(fields):
            tags = desc.path.tags
            for depth in range(len(tags)):
                cls._rank.setdefault((tags[:depth], tags[depth]), i)
            if getattr(desc.path, "attr", None):
                cls._rank.setdefault((tags, "@" + desc.path.attr), i)
            if isinstance(desc, Size):
                cls._rank.setdefault((tags, "@unit"), i)

    def __init__(self, node: etree._Element | None = None, /, **fields: Any):
        self.node = etree.Element(self.TAG) if node is None else node
        order = self._order
        for name in sorted(fields, key=lambda n: order.index(n) if n in order else len(order)):
            if not hasattr(type(self), name):
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            setattr(self, name, fields[name])

    @classmethod
    def parse(cls, xml: str | bytes):
        node = parse_xml(xml)
        if node.tag != cls.TAG:
            raise ValueError(f"expected <{cls.TAG}> XML, got <{node.tag}>")
        return cls(node)

    def to_xml(self) -> str:
        node = etree.fromstring(etree.tostring(self.node, with_tail=False), _PARSER)
        etree.indent(node, space="  ")
        return etree.tostring(node, encoding="unicode", pretty_print=True)

    def insert(self, parent: etree._Element, child: etree._Element, parent_tags: tuple) -> etree._Element:
        """Insert ``child`` after the last sibling of its kind, else before the first known sibling declared
        after it, else at the end."""
        same = [c for c in parent.iterchildren(child.tag) if c is not child]
        if same:
            same[-1].addnext(child)
            return child
        rank = self._rank.get((parent_tags, child.tag))
        if rank is not None:
            for i, sibling in enumerate(parent):
                other = self._rank.get((parent_tags, sibling.tag))
                if other is not None and other > rank:
                    parent.insert(i, child)
                    return child
        parent.append(child)
        return child

    def set_attr(self, node: etree._Element, name: str, value: str, tags: tuple) -> None:
        """Set an attribute, placing a new one in declaration order among the known ones."""
        rank = self._rank.get((tags, "@" + name))
        later = [k for k in node.attrib if (r := self._rank.get((tags, "@" + k))) is not None
                 and rank is not None and r > rank]
        if name in node.attrib or not later:
            node.set(name, value)
            return
        items = list(node.attrib.items())
        node.attrib.clear()
        for key, val in items:
            if key == later[0]:
                node.set(name, value)
            node.set(key, val)

    def __eq__(self, other) -> bool:  # two wrappers of the same element are the same model
        return isinstance(other, XmlModel) and other.node is self.node

    def __hash__(self) -> int:
        return id(self.node)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.node.get('name') or self.node.findtext('name') or ''}>"
