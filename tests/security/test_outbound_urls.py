"""The allow-list matcher and the address classes (recorder/core/urls.py), without I/O."""

from __future__ import annotations

import ipaddress

import pytest

from recorder.core.urls import AllowList, UrlRefused, is_internal, parse_ice_uri, parse_url

LIST = AllowList.parse(["http://127.0.0.1:8443", "https://sfu.example.com/app",
                        "https://Hooks.Example.com./in/"])


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8443", "http://127.0.0.1:8443/", "http://127.0.0.1:8443/any/path?q=1",
    "http://[::ffff:127.0.0.1]:8443/x",  # the same address
    "https://sfu.example.com/app", "https://sfu.example.com/app/", "https://sfu.example.com/app/x",
    "https://sfu.example.com:443/app/x", "https://SFU.example.com./app/x",
    "https://sfu.example.com/app/./x", "https://sfu.example.com/%61pp/x",
    "https://hooks.example.com/in", "https://hooks.example.com/in/rec",
])
def test_allowed(url: str) -> None:
    assert LIST.allows(url)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8443@10.0.0.5/x", "http://u:p@127.0.0.1:8443/", "http://@127.0.0.1:8443/",
    "http://127.0.0.1:8443.evil.example/x", "http://127.0.0.1:84430/", "http://127.0.0.1/",
    "https://127.0.0.1:8443/", "ftp://127.0.0.1:8443/", "http://127.0.0.2:8443/",
    "http://localhost:8443/",  # a name is not the address it resolves to
    "https://sfu.example.com/app2", "https://sfu.example.com/ap", "https://sfu.example.com/",
    "https://sfu.example.com/x/app", "https://sfu.example.com/app/../admin",
    "https://sfu.example.com/app%2F..%2Fadmin", "https://sfu.example.com/App",
    "https://sfu.example.com:8443/app", "http://sfu.example.com/app",
    "https://sfu.example.com.evil.example/app", "https://evil.example/sfu.example.com/app",
    "http://0", "http://0/x", "http://[::1", "http://127.1/", "http://2130706433/",
    "http://0x7f000001/", "http://:80/", "http://h:0/", "http://h:99999/", "http://h\\@x/",
    "http://h x/", "http://[fe80::1%25eth0]/", "/relative", "",
])
def test_refused(url: str) -> None:
    assert not LIST.allows(url)


def test_an_empty_list_allows_nothing() -> None:
    assert not AllowList()
    with pytest.raises(UrlRefused, match="matches no entry"):
        AllowList().check("https://sfu.example.com/app")


def test_an_entry_without_a_port_means_the_schemes_default() -> None:
    assert AllowList.parse(["http://h.example"]).allows("http://h.example:80/x")
    assert not AllowList.parse(["http://h.example"]).allows("http://h.example:8080/x")


@pytest.mark.parametrize("entry", ["ftp://h", "h.example", "http://u@h", "http://0",
                                   "http://[::1", "http://h:0", "http://h/?q=1", "http://h/#f",
                                   "http:///x"])
def test_entries_that_do_not_parse_are_named(entry: str) -> None:
    with pytest.raises(ValueError, match="entry"):
        AllowList.parse(["https://ok.example", entry])


@pytest.mark.parametrize(("address", "internal"), [
    ("127.0.0.1", True), ("10.1.2.3", True), ("172.16.0.1", True), ("192.168.1.1", True),
    ("169.254.169.254", True), ("100.64.0.1", True), ("100.100.100.200", True),
    ("0.0.0.0", True), ("224.0.0.1", True), ("240.0.0.1", True), ("255.255.255.255", True),
    ("::1", True), ("::", True), ("fe80::1", True), ("fd00:ec2::254", True), ("fc00::1", True),
    ("ff02::1", True), ("::ffff:10.0.0.1", True), ("64:ff9b::a00:1", True),
    ("2002:a00:1::1", True), ("2001:0:4136:e378:8000:63bf:3fff:fdd2", True),
    ("93.184.216.34", False), ("8.8.8.8", False), ("2606:4700::1111", False),
])
def test_address_classes(address: str, internal: bool) -> None:
    assert is_internal(ipaddress.ip_address(address)) is internal


def test_an_internal_address_opens_only_when_an_entry_names_it_with_its_port() -> None:
    allowed = AllowList.parse(["http://10.0.0.5:8443", "http://internal.example"])
    ten = ipaddress.ip_address("10.0.0.5")
    assert allowed.address_allowed(ten, 8443)
    assert allowed.address_allowed(ipaddress.ip_address("::ffff:10.0.0.5"), 8443)
    assert not allowed.address_allowed(ten, 22)
    assert not allowed.address_allowed(ipaddress.ip_address("10.0.0.6"), 8443)
    assert allowed.address_allowed(ipaddress.ip_address("93.184.216.34"), 80)


def test_parsed_urls_are_what_aiohttp_requests() -> None:
    target = parse_url("HTTP://Example.COM./a/b?x=1")
    assert (target.scheme, target.host, target.port, target.segments) == (
        "http", "example.com", 80, ("a", "b"))
    assert str(target.url) == "http://example.com./a/b?x=1"


def test_ice_uris() -> None:
    stun = parse_ice_uri("stun:stun.example.net")
    assert (stun.host, stun.port, stun.address) == ("stun.example.net", 3478, None)
    turn = parse_ice_uri("turn:10.0.0.5:3479?transport=tcp")
    assert turn.with_address(ipaddress.ip_address("10.0.0.5")) == (
        "turn:10.0.0.5:3479?transport=tcp")
    for bad in ("http://x", "stun:", "stun:0", "stun:h:x", "stun:h:70000", "stun:u@h"):
        with pytest.raises(UrlRefused):
            parse_ice_uri(bad)
