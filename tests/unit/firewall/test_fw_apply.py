"""apply.py's decisions against a fake libvirt: which NIC copies change, what is defined and removed,
where the settings are kept. (The real libvirt and kernel are the e2e test's.)"""

from __future__ import annotations

import libvirt
import pytest
from lxml import etree

from flint.contracts.common import ServiceError
from flint.contracts.firewall import VMFirewallSettings
from flint.xml import FLINT_NS
from services.firewall import apply

UUID = "5b0c3e2d-8f1a-4c6b-9d7e-1a2b3c4d5e6f"
MAC1, MAC2, MAC3 = "52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"
NIC1 = "flint-vm-5b0c3e2d-525400000001"


def _err(code: int, message: str = "x") -> libvirt.libvirtError:
    exc = libvirt.libvirtError(message)
    exc.err = (code, 0, message, 0, "", None, None, 0, 0)
    return exc


def domain_xml(filters: dict[str, str | None], metadata: str | None = None) -> str:
    nics = ""
    for mac, flt in filters.items():
        kind = "direct" if mac == MAC3 else "bridge"
        ref = f"<filterref filter='{flt}'/>" if flt else ""
        nics += f"<interface type='{kind}'><mac address='{mac}'/><source bridge='br0'/>{ref}</interface>"
    meta = f"<metadata><flint:vm xmlns:flint='{FLINT_NS}'>{metadata}</flint:vm></metadata>" if metadata else ""
    return f"<domain type='qemu'><name>web</name><uuid>{UUID}</uuid>{meta}<devices>{nics}</devices></domain>"


class FakeFilter:
    def __init__(self, conn, xml: str, uuid: str):
        self.conn, self.xml, self.uuid = conn, xml, uuid

    def name(self):
        return etree.fromstring(self.xml.encode()).get("name")

    def UUIDString(self):  # noqa: N802 - libvirt's name
        return self.uuid

    def XMLDesc(self, _flags):  # noqa: N802
        return self.xml

    def undefine(self):
        self.conn.undefined.append(self.name())
        del self.conn.filters[self.name()]


class FakeDomain:
    def __init__(self, config: dict, live: dict | None, metadata: str | None = None):
        self.config, self.live = dict(config), None if live is None else dict(live)
        self.meta = {libvirt.VIR_DOMAIN_AFFECT_CONFIG: metadata, libvirt.VIR_DOMAIN_AFFECT_LIVE: metadata}
        self.updates: list[tuple[str, str | None, int]] = []

    def isActive(self):  # noqa: N802
        return self.live is not None

    def isPersistent(self):  # noqa: N802
        return True

    def name(self):
        return "web"

    def UUIDString(self):  # noqa: N802
        return UUID

    def XMLDesc(self, flags):  # noqa: N802
        if flags & libvirt.VIR_DOMAIN_XML_INACTIVE or self.live is None:
            return domain_xml(self.config, self._meta_children(libvirt.VIR_DOMAIN_AFFECT_CONFIG))
        return domain_xml(self.live, self._meta_children(libvirt.VIR_DOMAIN_AFFECT_LIVE))

    def _meta_children(self, flag):
        text = self.meta[flag]
        if not text:
            return None
        root = etree.fromstring(text.encode())
        return "".join(f"<flint:{c.tag}>{c.text}</flint:{c.tag}>" for c in root)

    def updateDeviceFlags(self, xml, flag):  # noqa: N802
        nic = etree.fromstring(xml.encode())
        mac = nic.find("mac").get("address")
        ref = nic.find("filterref")
        flt = None if ref is None else ref.get("filter")
        (self.live if flag == libvirt.VIR_DOMAIN_AFFECT_LIVE else self.config)[mac] = flt
        self.updates.append((mac, flt, flag))

    def metadata(self, _type, uri, flag):
        assert uri == FLINT_NS
        if not self.meta[flag]:
            raise _err(libvirt.VIR_ERR_NO_DOMAIN_METADATA)
        return self.meta[flag]

    def setMetadata(self, _type, xml, key, uri, flag):  # noqa: N802
        assert uri == FLINT_NS and (xml is None or (key == "flint" and "xmlns" not in xml))
        self.meta[flag] = xml


class FakeConn:
    def __init__(self, dom: FakeDomain):
        self.dom = dom
        self.filters: dict[str, FakeFilter] = {}
        self.defined: list[str] = []
        self.undefined: list[str] = []

    def lookupByUUIDString(self, uuid):  # noqa: N802
        if uuid != UUID:
            raise _err(libvirt.VIR_ERR_NO_DOMAIN, "Domain not found")
        return self.dom

    def listAllDomains(self, _flags):  # noqa: N802
        return [self.dom]

    def nwfilterLookupByName(self, name):  # noqa: N802
        if name not in self.filters:
            raise _err(libvirt.VIR_ERR_NO_NWFILTER)
        return self.filters[name]

    def nwfilterDefineXML(self, xml):  # noqa: N802
        root = etree.fromstring(xml.encode())
        name = root.get("name")
        uuid = self.filters[name].uuid if name in self.filters else f"uuid-{len(self.defined)}"
        if root.find("uuid") is None:  # libvirt answers with the uuid it gave the filter
            etree.SubElement(root, "uuid").text = uuid
            root.insert(0, root[-1])
        elif root.findtext("uuid") != uuid:
            raise _err(libvirt.VIR_ERR_OPERATION_FAILED, f"filter '{name}' already exists with uuid {uuid}")
        self.filters[name] = FakeFilter(self, etree.tostring(root, encoding="unicode"), uuid)
        self.defined.append(name)

    def listAllNWFilters(self, _flags):  # noqa: N802
        return list(self.filters.values())


@pytest.fixture
def conn():
    dom = FakeDomain({MAC1: None, MAC2: "clean-traffic", MAC3: None}, {MAC1: None, MAC2: "clean-traffic", MAC3: None})
    return FakeConn(dom)


def test_attach_live_and_persistent_then_nothing_to_do(conn):
    settings = VMFirewallSettings(rulesets=["web"], default_policy="drop")
    result = apply.apply_vm(conn, UUID, settings, "local", {"web"})
    assert conn.dom.config[MAC1] == NIC1 and conn.dom.live[MAC1] == NIC1
    assert conn.dom.config[MAC2] == "flint-vm-5b0c3e2d-525400000002"  # another filter is replaced ...
    assert conn.dom.config[MAC3] is None  # ... a macvtap NIC is left alone
    nics = {n.mac: n for n in result.nics}
    assert nics[MAC1].attached and nics[MAC1].live
    assert nics[MAC2].note == "replaced filter 'clean-traffic'"
    assert nics[MAC3].note == "nwfilter does not apply to direct interfaces" and not nics[MAC3].attached
    assert result.settings == settings  # read back from the metadata
    assert '"default_policy": "drop"' in conn.dom.meta[libvirt.VIR_DOMAIN_AFFECT_CONFIG]
    assert "<filterref filter=\"flint-rs-web\"/>" in conn.filters[NIC1].xml

    conn.dom.updates.clear()
    conn.defined.clear()
    apply.apply_vm(conn, UUID, settings, "local", {"web"})
    assert conn.dom.updates == [] and conn.defined == []  # idempotent: no device update, no redefinition


def test_changed_settings_redefine_the_nic_filter_only(conn):
    apply.apply_vm(conn, UUID, VMFirewallSettings(rulesets=["web"]), "local", {"web"})
    uuid = conn.filters[NIC1].uuid
    conn.dom.updates.clear()
    apply.apply_vm(conn, UUID, VMFirewallSettings(rulesets=["web", "ssh"]), "local", {"web", "ssh"})
    assert conn.dom.updates == []  # the NICs already point at their filters
    assert conn.filters[NIC1].uuid == uuid  # redefined under the same uuid
    assert "flint-rs-ssh" in conn.filters[NIC1].xml


def test_unknown_rulesets_are_left_out_of_the_filter(conn):
    result = apply.apply_vm(conn, UUID, VMFirewallSettings(rulesets=["web", "gone"]), "local", {"web"})
    assert "flint-rs-gone" not in conn.filters[NIC1].xml
    assert result.missing_rulesets == ["gone"]


def test_detach_removes_references_then_filters_and_settings(conn):
    conn.dom.meta[libvirt.VIR_DOMAIN_AFFECT_CONFIG] = "<vm><created-by>alice</created-by></vm>"
    apply.apply_vm(conn, UUID, VMFirewallSettings(anti_spoofing=True), "local", set())
    assert "created-by" in conn.dom.meta[libvirt.VIR_DOMAIN_AFFECT_CONFIG]  # other keys stay
    result = apply.apply_vm(conn, UUID, VMFirewallSettings(), "local", set())
    assert conn.dom.config == {MAC1: None, MAC2: None, MAC3: None} and conn.dom.live[MAC1] is None
    assert not [n for n in conn.filters if n.startswith("flint-vm-")]
    assert conn.dom.meta[libvirt.VIR_DOMAIN_AFFECT_CONFIG] == "<vm><created-by>alice</created-by></vm>"
    assert conn.dom.meta[libvirt.VIR_DOMAIN_AFFECT_LIVE] is None
    assert not any(n.attached for n in result.nics)


def test_detach_leaves_a_foreign_filter_alone(conn):
    apply.apply_vm(conn, UUID, VMFirewallSettings(), "local", set())
    assert conn.dom.config[MAC2] == "clean-traffic"


def test_stopped_vm_changes_only_its_definition():
    conn = FakeConn(FakeDomain({MAC1: None}, None))
    result = apply.apply_vm(conn, UUID, VMFirewallSettings(rulesets=["a"]), "local", {"a"})
    assert conn.dom.updates == [(MAC1, NIC1, libvirt.VIR_DOMAIN_AFFECT_CONFIG)]
    assert result.nics[0].live is None


def test_filters_of_removed_nics_and_vms_are_found():
    conn = FakeConn(FakeDomain({MAC1: None}, None))
    apply.apply_vm(conn, UUID, VMFirewallSettings(rulesets=["a"]), "local", {"a"})
    conn.nwfilterDefineXML("<filter name='flint-vm-5b0c3e2d-525400000009' chain='root'/>")  # a NIC gone
    conn.nwfilterDefineXML("<filter name='flint-vm-deadbeef-525400000001' chain='root'/>")  # a VM gone
    assert apply.orphan_nic_filters(conn) == ["flint-vm-5b0c3e2d-525400000009", "flint-vm-deadbeef-525400000001"]
    assert apply.all_settings(conn) == {UUID: ("web", VMFirewallSettings(rulesets=["a"]))}


def test_unknown_vm_and_missing_driver():
    conn = FakeConn(FakeDomain({}, None))
    with pytest.raises(ServiceError) as info:
        apply.apply_vm(conn, "00000000-0000-0000-0000-000000000000", VMFirewallSettings(), "local")
    assert info.value.code == 404

    class NoDriver(FakeConn):
        def nwfilterLookupByName(self, name):  # noqa: N802
            raise _err(libvirt.VIR_ERR_NO_SUPPORT, "this function is not supported by the connection driver")

    with pytest.raises(apply.NoNWFilter) as info:
        apply.filter_uuid(NoDriver(FakeDomain({}, None)), "x")
    assert info.value.code == 501 and "no nwfilter driver" in info.value.message


def test_metadata_wire_format():
    assert apply._metadata_element({"firewall": '{"a": 1}', "created-by": "bob"}) == (
        '<vm><firewall>{"a": 1}</firewall><created-by>bob</created-by></vm>')
    assert apply._metadata_values("<vm>\n  <firewall>x</firewall>\n</vm>") == {"firewall": "x"}
    assert apply._metadata_values(None) == {}
