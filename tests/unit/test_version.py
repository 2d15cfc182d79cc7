"""libvirt version encoding and the minimum-version check."""

from __future__ import annotations

import pytest

from flint.virt.version import (
    MIN_LIBVIRT,
    MIN_LIBVIRT_INT,
    LibvirtTooOld,
    check_libvirt_version,
    format_version,
    parse_version,
    version_tuple,
)


def test_minimum_is_ubuntu_2204s_libvirt():
    assert MIN_LIBVIRT == (8, 0, 0)
    assert MIN_LIBVIRT_INT == 8_000_000


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (9_000_000, "9.0.0"),
        (8_000_000, "8.0.0"),
        (10_010_001, "10.10.1"),
        (12_008_000, "12.8.0"),
        (7_999_999, "7.999.999"),
    ],
)
def test_format_and_parse_round_trip(number, text):
    assert format_version(number) == text
    assert parse_version(text) == number


def test_parse_accepts_short_and_prefixed_forms():
    assert parse_version("8.0") == 8_000_000
    assert parse_version("libvirt 9.0.0") == 9_000_000
    assert parse_version(" 9.0.0\n") == 9_000_000


@pytest.mark.parametrize("text", ["", "9", "nine", "9.0.0.1", "9.1000.0", "-1.0.0"])
def test_parse_rejects_garbage(text):
    with pytest.raises(ValueError):
        parse_version(text)


def test_version_tuple():
    assert version_tuple(9_000_000) == (9, 0, 0)
    assert version_tuple(8_002_003) == (8, 2, 3)


@pytest.mark.parametrize("installed", [8_000_000, 9_000_000, 10_000_000])
def test_new_enough_passes(installed):
    assert check_libvirt_version(installed) is None


@pytest.mark.parametrize("installed", [7_999_999, 7_000_000, 6_010_000])
def test_too_old_raises_with_both_versions_and_how_to_upgrade(installed):
    with pytest.raises(LibvirtTooOld) as info:
        check_libvirt_version(installed)
    err = info.value
    assert err.installed == format_version(installed)
    assert err.required == "8.0.0"
    message = str(err)
    assert format_version(installed) in message
    assert "8.0.0" in message
    assert "upgrade" in message.lower()
