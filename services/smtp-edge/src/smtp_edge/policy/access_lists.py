"""Deny and allow lists of client networks, read from files (a ConfigMap in the chart) and re-read when they change.

Denied: 421 at connect, before the greeting. Allowed: exempt from the message rate limits and the AUTH failure
throttle (never from the connection caps, which protect the pod itself). An address in both lists follows the more
specific network (deny 203.0.113.0/24 with allow 203.0.113.7/32 lets .7 in); on a tie, deny wins.

File format: one CIDR (or bare address) per line; blank lines and `#` comments are ignored. A file that cannot be
read or parsed is refused whole: at start the edge does not start, later the last good lists stay in force (a
half-read deny list must not let anyone in).
"""

from __future__ import annotations

import enum
import ipaddress
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog

from smtp_edge.smtp import replies

log = structlog.get_logger(__name__)

DENIED = replies.DENIED

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Access(enum.Enum):
    ALLOWED = "allowed"
    DENIED = "denied"
    UNLISTED = "unlisted"


class AccessListError(ValueError):
    """A list file that cannot be used; the message names the file and line."""


def parse_networks(lines: Iterable[str], source: str) -> tuple[Network, ...]:
    networks = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise AccessListError(f"{source}:{number}: not an IP network: {text!r}") from None
    return tuple(networks)


@dataclass(frozen=True, slots=True)
class AccessLists:
    deny: tuple[Network, ...] = ()
    allow: tuple[Network, ...] = ()

    def check(self, ip: str) -> Access:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return Access.UNLISTED
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        denied = max((n.prefixlen for n in self.deny if address in n), default=-1)
        allowed = max((n.prefixlen for n in self.allow if address in n), default=-1)
        if denied < 0 and allowed < 0:
            return Access.UNLISTED
        return Access.ALLOWED if allowed > denied else Access.DENIED


def _signature(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file does: a ConfigMap update swaps a symlink, an edit rewrites it (stat follows both)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_ino, stat.st_size


def _read(path: Path | None) -> tuple[Network, ...]:
    if path is None:
        return ()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise AccessListError(f"{path}: cannot be read: {error}") from None
    return parse_networks(text.splitlines(), str(path))


class AccessListFiles:
    """The lists from their files, looked at again (one stat per file) at most every `check_interval` seconds,
    when a client connects: no background task, and an edit is in force for the next connection after that."""

    def __init__(
        self,
        deny_file: Path | None,
        allow_file: Path | None,
        *,
        static_allow: tuple[Network, ...] = (),
        check_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._deny_file = deny_file
        self._allow_file = allow_file
        self._static_allow = static_allow
        self._interval = check_interval
        self._clock = clock
        self._signatures = self._stat()
        self._lists = self._load()  # at start, a bad file is fatal
        self._checked_at = clock()
        log.info("access lists loaded", denied_networks=len(self._lists.deny), allowed_networks=len(self._lists.allow))

    def _stat(self) -> tuple[tuple[int, int, int] | None, ...]:
        return tuple(_signature(p) if p else None for p in (self._deny_file, self._allow_file))

    def _load(self) -> AccessLists:
        return AccessLists(deny=_read(self._deny_file), allow=self._static_allow + _read(self._allow_file))

    @property
    def lists(self) -> AccessLists:
        now = self._clock()
        if now - self._checked_at >= self._interval:
            self._checked_at = now
            self._reload_if_changed()
        return self._lists

    def check(self, ip: str) -> Access:
        return self.lists.check(ip)

    def _reload_if_changed(self) -> None:
        signatures = self._stat()
        if signatures == self._signatures:
            return
        try:
            lists = self._load()
        except AccessListError as error:
            log.error("access list not reloaded; the previous lists stay in force", error=str(error))
            return  # signatures not updated: tried again at the next check, so a fixed file is picked up
        self._signatures = signatures
        self._lists = lists
        log.info("access lists reloaded", denied_networks=len(lists.deny), allowed_networks=len(lists.allow))
