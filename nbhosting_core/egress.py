"""Kernels' egress: where students' traffic may not go, as an nftables ruleset (pure).

With ``egress`` on, a kernel's connections leave its container through slirp4netns, a process of the student's
own uid on the host: every packet it sends is an ordinary host socket's, so the host's firewall sees the student's
uid on it (nftables ``meta skuid``). Without a filter a kernel reaches what the host reaches: the cloud's metadata
service (169.254.169.254, and its credentials), the private network the host sits in, and every service listening
on the host's own addresses.

The filter is one table of nbhosting's own (``egress_table``, family ``inet``: IPv4 and IPv6), whose output chain
sends the packets of the students' uids (and of their subordinate ids) through these rules, in order:

1. to a network of ``egress_allow``: accepted (the admin's exceptions come first);
2. DNS (port 53) to the host's own resolvers (``/etc/resolv.conf``): accepted, or no name would resolve in a kernel
   on hosts whose resolver sits at a private or loopback address;
3. to any of the host's own addresses (``fib daddr type local``: whatever they are, now or after a change), to
   :data:`BLOCKED_V4` or to :data:`BLOCKED_V6`: refused, clearly: a TCP reset (the kernel's connect fails at once
   with "connection refused"), an ICMP "administratively prohibited" for the rest, and counted;
4. anything else (the internet): accepted.

Every other user of the host, root included, is not matched. The ruleset replaces the table atomically (one ``nft
-f`` transaction: the table is created if absent, deleted, and made again), so installing it again, with other
settings, never leaves a moment without a filter nor two filters at once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .naming import subid_range

if TYPE_CHECKING:
    from .settings import Settings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: IPv4 destinations refused by default: "this network" (0.0.0.0 reaches the host), private ranges (RFC 1918),
#: carrier-grade NAT (shared address space, often a provider's internal network), loopback, link-local (cloud
#: metadata services live at 169.254.169.254)
BLOCKED_V4 = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
)
#: IPv6 destinations refused by default: unspecified (reaches the host), loopback, unique local (private networks,
#: AWS's metadata at fd00:ec2::254), link-local
BLOCKED_V6 = ("::/128", "::1/128", "fc00::/7", "fe80::/10")
#: the chain that refuses: its counter says how many packets were refused
REFUSE_CHAIN = "refuse"


def student_uids(settings: Settings) -> list[tuple[int, int]]:
    """The uid ranges whose traffic is filtered (pure): the students', and all their subordinate ids."""
    s = settings
    first, _ = subid_range(s.uid_min, uid_min=s.uid_min, subid_base=s.subid_base, subid_count=s.subid_count)
    last_first, count = subid_range(s.uid_max, uid_min=s.uid_min, subid_base=s.subid_base, subid_count=s.subid_count)
    return [(s.uid_min, s.uid_max), (first, min(last_first + count - 1, 2**32 - 2))]


def nameservers(resolv_conf: str) -> list[IPAddress]:
    """The resolvers an ``/etc/resolv.conf`` names (pure); a scoped address loses its ``%zone``."""
    found: list[IPAddress] = []
    for line in resolv_conf.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                address = ipaddress.ip_address(parts[1].split("%", 1)[0])
            except ValueError:
                continue
            if address not in found:
                found.append(address)
    return found


def _elements(items: Iterable[object]) -> str:
    listed = ", ".join(str(item) for item in items)
    return f" elements = {{ {listed} }};" if listed else ""


def _set(name: str, family: int, items: Sequence[object], *, interval: bool = True) -> str:
    kind = "ipv4_addr" if family == 4 else "ipv6_addr"
    flags = " flags interval; auto-merge;" if interval else ""
    return f"\tset {name} {{ type {kind};{flags}{_elements(items)} }}\n"


def ruleset(
    table: str,
    uids: Sequence[tuple[int, int]],
    allow: Sequence[IPNetwork],
    resolvers: Sequence[IPAddress],
) -> str:
    """The nft script that installs (or replaces, atomically) the egress filter in ``inet <table>`` (pure)."""
    allow4 = [n for n in allow if n.version == 4]
    allow6 = [n for n in allow if n.version == 6]
    dns4 = [a for a in resolvers if a.version == 4]
    dns6 = [a for a in resolvers if a.version == 6]
    who = ", ".join(f"{low}-{high}" for low, high in uids)
    return (
        "# nbhosting: kernels' egress filter (see nbhosting_core/egress.py); made by nbhosting, replaced whole\n"
        f"table inet {table}\n"
        f"delete table inet {table}\n"
        f"table inet {table} {{\n"
        + _set("allowed4", 4, allow4)
        + _set("allowed6", 6, allow6)
        + _set("resolvers4", 4, dns4, interval=False)
        + _set("resolvers6", 6, dns6, interval=False)
        + _set("blocked4", 4, BLOCKED_V4)
        + _set("blocked6", 6, BLOCKED_V6)
        + "\tchain output {\n"
        "\t\ttype filter hook output priority filter; policy accept;\n"
        f"\t\tmeta skuid {{ {who} }} jump students\n"
        "\t}\n"
        "\tchain students {\n"
        "\t\tip daddr @allowed4 accept\n"
        "\t\tip6 daddr @allowed6 accept\n"
        "\t\tip daddr @resolvers4 meta l4proto { tcp, udp } th dport 53 accept\n"
        "\t\tip6 daddr @resolvers6 meta l4proto { tcp, udp } th dport 53 accept\n"
        f"\t\tfib daddr type local jump {REFUSE_CHAIN}\n"
        f"\t\tip daddr @blocked4 jump {REFUSE_CHAIN}\n"
        f"\t\tip6 daddr @blocked6 jump {REFUSE_CHAIN}\n"
        "\t}\n"
        f"\tchain {REFUSE_CHAIN} {{\n"
        "\t\tcounter\n"
        "\t\tmeta l4proto tcp reject with tcp reset\n"
        "\t\treject with icmpx type admin-prohibited\n"
        "\t}\n"
        "}\n"
    )


def removal(table: str) -> str:
    """The nft script that removes the table ``inet <table>``, present or not (pure)."""
    return f"table inet {table}\ndelete table inet {table}\n"
