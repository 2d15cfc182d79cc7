"""Declarative lxml models of libvirt XML. Pure: nothing here opens a connection or a file.

``Model.parse(xml)`` wraps a document, fields read and write it in place, ``model.to_xml()`` gives
pretty, deterministic text; XML a model does not declare survives the round trip.
"""

from .base import FLINT_NS, XmlModel, parse_xml
from .capabilities import Capabilities, DomainCapabilities, Guest, GuestChoice, GuestDomain, Machine
from .devices import Channel, Console, Controller, Graphics, Input, Rng, Serial, Video
from .disk import Disk
from .domain import Domain
from .interface import Interface
from .metadata import flint_metadata_xml, parse_flint_metadata
from .names import validate_name
from .network import DhcpHost, DhcpRange, Network, NetworkIP
from .nwfilter import Filter, FilterParameter, FilterRef, Rule
from .pool import StoragePool
from .summary import domain_summary
from .volume import StorageVolume

__all__ = [
    "FLINT_NS", "Capabilities", "Channel", "Console", "Controller", "DhcpHost", "DhcpRange", "Disk", "Domain",
    "DomainCapabilities", "Filter", "FilterParameter", "FilterRef", "Graphics", "Guest", "GuestChoice",
    "GuestDomain", "Input", "Interface", "Machine", "Network", "NetworkIP", "Rng", "Rule", "Serial",
    "StoragePool", "StorageVolume", "Video", "XmlModel", "domain_summary", "flint_metadata_xml",
    "parse_flint_metadata", "parse_xml", "validate_name",
]
