"""One libvirtd reached under two host names (an SSH alias of this machine) reports each VM twice: the
gateway's view keeps it with the host that showed it first, and one host forgetting it does not hide it."""

from __future__ import annotations

import msgspec

from flint.contracts.inventory import VM
from gateway.view import InventoryView

UUID = "0b3c4d5e-0000-4000-8000-000000000001"


def _put(view: InventoryView, host: str, state: str = "running") -> None:
    doc = VM(id=UUID, name="web", host=host, state=state)
    view._apply_inventory(f"{host}.vm.{UUID}", msgspec.json.encode(doc))


def _delete(view: InventoryView, host: str) -> None:
    view._apply_inventory(f"{host}.vm.{UUID}", None)


def test_the_first_host_keeps_the_vm_while_both_report_it():
    view = InventoryView()
    _put(view, "local")
    _put(view, "ssh1")
    _put(view, "ssh1", state="paused")
    assert view.vms[UUID].host == "local" and view.vms[UUID].state == "running"
    _put(view, "local", state="paused")
    assert view.vms[UUID].state == "paused"
    assert msgspec.json.decode(view.vm_json[UUID])["host"] == "local"


def test_removing_the_alias_does_not_hide_the_vm():
    view = InventoryView()
    _put(view, "local")
    _put(view, "ssh1")
    _delete(view, "ssh1")
    assert view.vms[UUID].host == "local"


def test_when_the_shown_host_forgets_it_the_other_one_shows_it():
    view = InventoryView()
    _put(view, "ssh1")
    _put(view, "local", state="shutoff")
    _delete(view, "ssh1")
    assert view.vms[UUID].host == "local" and view.vms[UUID].state == "shutoff"
    _delete(view, "local")
    assert UUID not in view.vms and UUID not in view.vm_json


def test_a_vm_on_one_host_comes_and_goes():
    view = InventoryView()
    _put(view, "local")
    assert [v.id for v in view.vms_of()] == [UUID]
    _delete(view, "local")
    assert view.vms_of() == [] and UUID not in view.vm_json


def test_forgetting_a_host_keeps_the_vm_another_host_reports():
    view = InventoryView()
    _put(view, "ssh1")
    _put(view, "local", state="shutoff")
    view.forget_host("ssh1")
    assert view.vms[UUID].host == "local"
    view.forget_host("local")
    assert UUID not in view.vms and view.host("local") is None
