"""The declarative base: fields, converters, element order, pruning, unknown XML kept."""

from __future__ import annotations

import pytest

from flint.xml.base import ON_OFF, YES_NO, Children, Flag, Prop, PropList, Size, XmlModel, to_bytes


class Item(XmlModel):
    TAG = "item"
    key = Prop("./@key")
    value = Prop(".")


class Thing(XmlModel):
    TAG = "thing"
    kind = Prop("./@kind")
    name = Prop("./name")
    count = Prop("./count", int)
    size = Size("./size", "KiB")
    enabled = Prop("./opts/@enabled", YES_NO)
    stp = Prop("./opts/@stp", ON_OFF)
    fast = Flag("./opts/fast")
    tags = PropList("./tags/tag")
    vnc_port = Prop("./display[@type='vnc']/@port", int)
    note = Prop("./flint:note")
    items = Children(Item, "./items/item")


def test_empty_model_reads_none():
    t = Thing()
    assert (t.kind, t.name, t.count, t.size, t.enabled, t.fast, t.tags, len(t.items)) == (
        None, None, None, None, None, False, [], 0)
    assert t.to_xml() == "<thing/>\n"


def test_fields_write_in_declaration_order():
    t = Thing()
    t.note = "n"
    t.tags = ["a", "b"]
    t.fast = True
    t.stp = False
    t.enabled = True
    t.count = 3
    t.name = "x"
    t.kind = "k"
    t.vnc_port = 5900
    t.items.append(Item(key="1", value="one"))
    assert t.to_xml() == (
        '<thing kind="k">\n  <name>x</name>\n  <count>3</count>\n'
        '  <opts enabled="yes" stp="off">\n    <fast/>\n  </opts>\n'
        "  <tags>\n    <tag>a</tag>\n    <tag>b</tag>\n  </tags>\n"
        '  <display type="vnc" port="5900"/>\n'
        '  <flint:note xmlns:flint="https://flint.dev/xmlns/flint/1">n</flint:note>\n'
        '  <items>\n    <item key="1">one</item>\n  </items>\n</thing>\n'
    )
    assert (t.enabled, t.stp, t.fast, t.tags, t.vnc_port, t.note) == (True, False, True, ["a", "b"], 5900, "n")


def test_setting_none_removes_and_prunes_empty_parents():
    t = Thing(name="x", enabled=True, fast=True, tags=["a"], vnc_port=1, note="n")
    t.items.append(Item(key="1"))
    t.enabled, t.fast, t.tags, t.vnc_port, t.note = None, False, [], None, None
    t.items.remove(t.items[0])
    assert t.to_xml() == "<thing>\n  <name>x</name>\n</thing>\n"


def test_unknown_xml_is_kept_and_new_fields_go_before_the_next_known_one():
    t = Thing.parse('<thing a="1"><name>x</name><zzz b="2"><y/></zzz><!-- note --><opts other="o"/>'
                    "<items><item key='1'>one</item><foreign/></items></thing>")
    t.count = 7
    t.enabled = False
    t.items.append(Item(key="2", value="two"))
    assert t.to_xml() == (
        '<thing a="1">\n  <name>x</name>\n  <zzz b="2">\n    <y/>\n  </zzz>\n'
        '  <!-- note -->\n  <count>7</count>\n  <opts other="o" enabled="no"/>\n'
        '  <items>\n    <item key="1">one</item>\n    <item key="2">two</item>\n    <foreign/>\n  </items>\n'
        "</thing>\n"
    )
    t.enabled = None
    assert '<opts other="o"/>' in t.to_xml()  # not pruned: it still holds an unknown attribute


def test_size_units():
    t = Thing.parse("<thing><size unit='MiB'>3</size></thing>")
    assert t.size == 3 * 1024
    t.size = 10
    assert '<size unit="KiB">10</size>' in t.to_xml()
    assert Thing.parse("<thing><size>5</size></thing>").size == 5
    assert to_bytes(1, "G") == 1024**3 and to_bytes(1, "GB") == 10**9 and to_bytes(7, None) == 7
    with pytest.raises(ValueError, match="unknown size unit"):
        to_bytes(1, "furlongs")


def test_child_models_edit_the_parent_tree_in_place():
    t = Thing.parse("<thing><items><item key='1'>one</item></items></thing>")
    t.items[0].value = "uno"
    item = t.items.append(Item(key="2"))
    item.value = "dos"
    assert [(i.key, i.value) for i in t.items] == [("1", "uno"), ("2", "dos")]
    t.items.clear()
    assert t.to_xml() == "<thing/>\n"


def test_remove_foreign_child_is_an_error():
    with pytest.raises(ValueError, match="not a child"):
        Thing().items.remove(Item())


def test_unknown_constructor_field():
    with pytest.raises(TypeError, match="no field 'colour'"):
        Thing(colour="red")


def test_bad_path_is_refused_at_declaration():
    with pytest.raises(ValueError, match="unsupported path step"):
        Prop("./a[1]/b")
