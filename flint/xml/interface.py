"""``<interface>``: a domain's network card, with its optional nwfilter reference."""

from __future__ import annotations

from collections.abc import Mapping

from .base import Children, Prop, XmlModel
from .nwfilter import FilterParameter


class Interface(XmlModel):
    """``type`` is network / bridge / direct (macvtap) / user / ethernet."""

    TAG = "interface"
    type = Prop("./@type")
    mac = Prop("./mac/@address")
    source_network = Prop("./source/@network", doc="type='network'")
    source_bridge = Prop("./source/@bridge", doc="type='bridge' (or filled in for running type='network')")
    source_dev = Prop("./source/@dev", doc="type='direct': host device")
    source_mode = Prop("./source/@mode", doc="type='direct': vepa, bridge, private, passthrough")
    target_dev = Prop("./target/@dev", doc="host tap device, e.g. vnet0 (live XML)")
    model = Prop("./model/@type", doc="virtio, e1000e, rtl8139, ...")
    filter = Prop("./filterref/@filter", doc="nwfilter name; None drops the reference", drop_element=True)
    filter_parameters = Children(FilterParameter, "./filterref/parameter")
    link_state = Prop("./link/@state", doc="up / down")
    boot_order = Prop("./boot/@order", int)

    def set_filter(self, name: str | None, parameters: Mapping[str, str] | None = None) -> Interface:
        """Reference nwfilter ``name`` with ``parameters`` (replacing any), or drop the reference (None)."""
        self.filter = None
        self.filter = name
        if name is not None:
            for key, value in (parameters or {}).items():
                self.filter_parameters.append(FilterParameter(name=key, value=value))
        return self

    def filter_params(self) -> dict[str, list[str]]:
        """The filter parameters by name; a name may repeat (several ``IP`` values)."""
        params: dict[str, list[str]] = {}
        for p in self.filter_parameters:
            params.setdefault(p.name, []).append(p.value)
        return params
