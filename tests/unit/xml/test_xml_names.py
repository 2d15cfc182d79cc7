from __future__ import annotations

import pytest

from flint.xml.names import validate_name


@pytest.mark.parametrize("kind", ["vm", "pool", "network", "filter", "volume"])
@pytest.mark.parametrize("name", ["web01", "a", "A_b-9", "x" * 63, "9lives"])
def test_valid_names(kind, name):
    assert validate_name(kind, name) == name


@pytest.mark.parametrize("name", ["disk.qcow2", "seed.iso", "root-1_a.raw"])
def test_volume_names_may_have_one_extension(name):
    assert validate_name("volume", name) == name


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("vm", "", "VM name must not be empty"),
        ("vm", "x" * 64, "VM name 'xxx.*too long"),
        ("vm", "-web", "VM name '-web' is invalid"),
        ("vm", ".hidden", "VM name '.hidden' is invalid"),
        ("vm", "a b", "VM name 'a b' is invalid"),
        ("vm", "a/b", "VM name 'a/b' is invalid"),
        ("vm", "näme", "VM name 'näme' is invalid"),
        ("vm", "web\n", "VM name 'web\\\\n' is invalid"),
        ("vm", "web.example", "VM name 'web.example' must not contain '.'"),
        ("pool", "a..b", "pool name 'a..b' must not contain '..'"),
        ("pool", "images.x", "pool name 'images.x' must not contain '.'"),
        ("network", "lab'", "network name \"lab'\" is invalid"),
        ("filter", "x<y", "filter name 'x<y' is invalid"),
        ("volume", "disk..qcow2", "volume name 'disk..qcow2' must not contain '..'"),
        ("volume", "a.tar.gz", "volume name 'a.tar.gz' may contain at most one '.'"),
        ("volume", "../etc", "volume name '../etc' is invalid"),
        ("volume", 5, "volume name must be a string, not int"),
    ],
)
def test_invalid_names_say_which_field(kind, name, message):
    with pytest.raises(ValueError, match=message):
        validate_name(kind, name)


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown name kind 'host'"):
        validate_name("host", "x")
