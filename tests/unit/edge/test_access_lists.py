"""Deny/allow lists of client networks: parsing, which list wins, and reloading a changed file."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtp_edge.policy.access_lists import Access, AccessListError, AccessListFiles, AccessLists, parse_networks


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lists(deny: str = "", allow: str = "") -> AccessLists:
    return AccessLists(parse_networks(deny.split(","), "deny"), parse_networks(allow.split(","), "allow"))


@pytest.mark.parametrize(
    ("deny", "allow", "ip", "expected"),
    [
        ("", "", "192.0.2.1", Access.UNLISTED),
        ("192.0.2.0/24", "", "192.0.2.1", Access.DENIED),
        ("192.0.2.0/24", "", "192.0.3.1", Access.UNLISTED),
        ("", "192.0.2.0/24", "192.0.2.1", Access.ALLOWED),
        ("192.0.2.0/24", "192.0.2.7", "192.0.2.7", Access.ALLOWED),  # the more specific network wins
        ("192.0.2.0/24", "192.0.2.7", "192.0.2.8", Access.DENIED),
        ("192.0.2.7", "192.0.2.0/24", "192.0.2.7", Access.DENIED),
        ("192.0.2.0/24", "192.0.2.0/24", "192.0.2.1", Access.DENIED),  # a tie: deny
        ("2001:db8::/32", "", "2001:db8::1", Access.DENIED),
        ("192.0.2.0/24", "", "::ffff:192.0.2.1", Access.DENIED),  # IPv4-mapped IPv6 is the IPv4 client
        ("0.0.0.0/0", "", "unknown", Access.UNLISTED),  # no address (no peer): no list applies
    ],
)
def test_which_list_applies(deny: str, allow: str, ip: str, expected: Access) -> None:
    assert lists(deny, allow).check(ip) is expected


def test_comments_blank_lines_and_bare_addresses() -> None:
    parsed = parse_networks(["# office", "", "  10.0.0.0/8  # VPN", "192.0.2.5", "2001:db8::/48"], "f")
    assert [str(n) for n in parsed] == ["10.0.0.0/8", "192.0.2.5/32", "2001:db8::/48"]


def test_a_bad_line_names_file_and_line() -> None:
    with pytest.raises(AccessListError, match=r"deny.txt:2: not an IP network: 'not-a-cidr'"):
        parse_networks(["10.0.0.0/8", "not-a-cidr"], "deny.txt")


def test_a_bad_or_missing_file_at_start_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "deny"
    bad.write_text("10.0.0.0/33\n")
    with pytest.raises(AccessListError, match="deny:1"):
        AccessListFiles(bad, None, check_interval=1)
    with pytest.raises(AccessListError, match="cannot be read"):
        AccessListFiles(None, tmp_path / "missing", check_interval=1)


def touch_later(path: Path, text: str) -> None:
    """Rewrites the file with an mtime surely different from the last one (coarse file system clocks)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_a_changed_file_is_reloaded_after_the_check_interval(tmp_path: Path) -> None:
    clock = Clock()
    deny = tmp_path / "deny"
    deny.write_text("192.0.2.0/24\n")
    files = AccessListFiles(deny, None, check_interval=5, clock=clock)
    assert files.check("192.0.2.1") is Access.DENIED
    touch_later(deny, "198.51.100.0/24\n")
    clock.now += 4
    assert files.check("192.0.2.1") is Access.DENIED  # not looked at yet
    clock.now += 1
    assert files.check("192.0.2.1") is Access.UNLISTED
    assert files.check("198.51.100.1") is Access.DENIED


def test_a_configmap_style_symlink_swap_is_reloaded(tmp_path: Path) -> None:
    """Kubernetes updates a mounted ConfigMap by pointing a symlink at a new directory."""
    clock = Clock()
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "allow").write_text("192.0.2.0/24\n")
    (tmp_path / "data").symlink_to(tmp_path / "v1")
    files = AccessListFiles(None, tmp_path / "data" / "allow", check_interval=1, clock=clock)
    assert files.check("192.0.2.1") is Access.ALLOWED
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "allow").write_text("198.51.100.0/24\n")
    (tmp_path / "data-new").symlink_to(tmp_path / "v2")
    (tmp_path / "data-new").replace(tmp_path / "data")
    clock.now += 1
    assert files.check("192.0.2.1") is Access.UNLISTED
    assert files.check("198.51.100.1") is Access.ALLOWED


def test_a_broken_edit_keeps_the_last_good_lists_until_fixed(tmp_path: Path) -> None:
    clock = Clock()
    deny = tmp_path / "deny"
    deny.write_text("192.0.2.0/24\n")
    files = AccessListFiles(deny, None, check_interval=1, clock=clock)
    touch_later(deny, "192.0.2.0/24\nhalf-written-line")
    clock.now += 1
    assert files.check("192.0.2.1") is Access.DENIED  # the previous list, not an empty one
    deny.unlink()
    clock.now += 1
    assert files.check("192.0.2.1") is Access.DENIED  # a vanished file is no reason to let everyone in
    deny.write_text("203.0.113.0/24\n")
    clock.now += 1
    assert files.check("192.0.2.1") is Access.UNLISTED
    assert files.check("203.0.113.1") is Access.DENIED


networks = st.builds(
    lambda address, prefix: ipaddress.ip_network(f"{ipaddress.IPv4Address(address)}/{prefix}", strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)


@given(st.lists(networks, max_size=6), st.lists(networks, max_size=6), st.integers(0, 2**32 - 1), st.integers(0, 32))
def test_the_most_specific_listed_network_decides(
    deny: list[ipaddress.IPv4Network], allow: list[ipaddress.IPv4Network], address: int, near: int
) -> None:
    """Against a reference: the longest prefix among the networks holding the address, deny on a tie."""
    # Often pick an address inside one of the networks, else the lists would rarely apply.
    if deny or allow:
        pick = (deny + allow)[near % len(deny + allow)]
        address = int(pick.network_address) + address % pick.num_addresses
    ip = ipaddress.IPv4Address(address)
    holding = [(n.prefixlen, n in deny and ip in n, n in allow and ip in n) for n in {*deny, *allow}]
    best = max((length for length, d, a in holding if d or a), default=None)
    if best is None:
        expected = Access.UNLISTED
    elif any(d for length, d, _ in holding if length == best):
        expected = Access.DENIED
    else:
        expected = Access.ALLOWED
    assert AccessLists(tuple(deny), tuple(allow)).check(str(ip)) is expected
