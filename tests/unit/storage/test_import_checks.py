"""volume.import's request checks: the address, the checksum, the name taken from the address."""

from __future__ import annotations

import pytest

from flint.contracts.common import ServiceError
from services.provisioner.volume_jobs import check_sha256, check_url, name_from_url

SUM = "d3934ddd42ded2879e41cd9667614ec15294b9a3a3a75cb4a4320a3346b168d7"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/a.iso", "https://cloud.debian.org/x/debian-12.qcow2",
                                 "http://[::1]/img.raw", "https://host/path/with%20space.iso?x=1"])
def test_http_and_https_addresses_pass(url):
    assert check_url(url) == url


@pytest.mark.parametrize(("url", "words"), [
    ("", "is required"),
    (None, "is required"),
    ("ftp://host/a.iso", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("/local/path.iso", "only http and https"),
    ("http:///nohost.iso", "no host name"),
    ("http://user:secret@host/a.iso", "user name or password"),
    ("http://host/a b.iso", "spaces"),
    ("http://host:99999/a.iso", "not a valid address"),
    ("http://host/" + "a" * 2100, "longer than 2048"),
])
def test_other_addresses_are_refused_naming_url(url, words):
    with pytest.raises(ServiceError) as info:
        check_url(url)
    assert info.value.field == "url" and info.value.code == 422 and words in info.value.message


def test_sha256_accepts_hex_in_any_case_with_or_without_prefix():
    assert check_sha256(None) is None and check_sha256("") is None
    assert check_sha256(SUM.upper()) == SUM
    assert check_sha256(f"sha256:{SUM}") == SUM


@pytest.mark.parametrize("value", ["abc", SUM[:-1], SUM + "0", "g" * 64])
def test_bad_sha256_is_refused_by_name(value):
    with pytest.raises(ServiceError) as info:
        check_sha256(value)
    assert info.value.field == "sha256"


def test_volume_name_from_the_address():
    assert name_from_url("https://cloud.debian.org/images/debian-12-genericcloud-amd64.qcow2?x=1") == \
        "debian-12-genericcloud-amd64.qcow2"
    assert name_from_url("http://h/dir/") == "dir"
    assert name_from_url("http://h/") == ""
