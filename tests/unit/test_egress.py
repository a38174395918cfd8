"""The egress filter's ruleset, as a spec: whose traffic, refused where, allowed where, replaced how."""

import ipaddress
import os
import shutil
import subprocess

import pytest

from nbhosting_core import Settings
from nbhosting_core.egress import BLOCKED_V4, BLOCKED_V6, nameservers, removal, ruleset, student_uids

net = ipaddress.ip_network
ip = ipaddress.ip_address
SETTINGS = Settings(uid_min=1_000_000, uid_max=1_999_999, subid_base=2**31, subid_count=1024)


def rules(allow=(), resolvers=(), table="nbhosting"):
    return ruleset(table, student_uids(SETTINGS), [net(n) for n in allow], [ip(a) for a in resolvers])


def chain(text, name):
    body = text.split(f"chain {name} {{", 1)[1].split("\n\t}", 1)[0]
    return [line.strip() for line in body.strip().splitlines()]


def test_the_students_uids_and_all_their_subordinate_ids_are_filtered():
    assert student_uids(SETTINGS) == [(1_000_000, 1_999_999), (2**31, 2**31 + 1_000_000 * 1024 - 1)]
    assert "meta skuid { 1000000-1999999, 2147483648-3171483647 } jump students" in rules()


def test_no_one_else_is_matched():
    assert chain(rules(), "output")[-1] == "meta skuid { 1000000-1999999, 2147483648-3171483647 } jump students"
    assert "policy accept" in chain(rules(), "output")[0]


def test_link_local_private_loopback_and_the_hosts_own_addresses_are_refused_by_default():
    text = rules()
    for network in ("169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8"):
        assert network in BLOCKED_V4 and network in text
    for network in ("fc00::/7", "fe80::/10", "::1/128"):
        assert network in BLOCKED_V6 and network in text
    students = chain(text, "students")
    assert "fib daddr type local jump refuse" in students  # whatever the host's addresses are, now or later
    assert "ip daddr @blocked4 jump refuse" in students and "ip6 daddr @blocked6 jump refuse" in students


def test_a_refusal_is_said_not_silent_and_counted():
    assert chain(rules(), "refuse") == [
        "counter",
        "meta l4proto tcp reject with tcp reset",  # the kernel's connect() fails at once: connection refused
        "reject with icmpx type admin-prohibited",
    ]
    assert "drop" not in rules()


def test_allowed_networks_come_before_any_refusal_in_both_families():
    text = rules(allow=["10.1.2.0/24", "192.0.2.2/32", "fd00:1::/64"])
    assert (
        "set allowed4 { type ipv4_addr; flags interval; auto-merge; elements = { 10.1.2.0/24, 192.0.2.2/32 }; }" in text
    )
    assert "set allowed6 { type ipv6_addr; flags interval; auto-merge; elements = { fd00:1::/64 }; }" in text
    students = chain(text, "students")
    assert students.index("ip daddr @allowed4 accept") < students.index("fib daddr type local jump refuse")
    assert students.index("ip6 daddr @allowed6 accept") < students.index("fib daddr type local jump refuse")


def test_nothing_allowed_makes_empty_sets():
    assert "set allowed4 { type ipv4_addr; flags interval; auto-merge; }" in rules()


def test_dns_to_the_hosts_own_resolvers_is_allowed_and_nothing_else_to_them():
    text = rules(resolvers=["10.255.255.53", "fd00::53"])
    assert "set resolvers4 { type ipv4_addr; elements = { 10.255.255.53 }; }" in text
    students = chain(text, "students")
    dns = "ip daddr @resolvers4 meta l4proto { tcp, udp } th dport 53 accept"
    assert dns in students and students.index(dns) < students.index("ip daddr @blocked4 jump refuse")


def test_installing_replaces_the_whole_table_in_one_transaction():
    head = rules(table="nbh_x").splitlines()[1:4]
    assert head == ["table inet nbh_x", "delete table inet nbh_x", "table inet nbh_x {"]
    assert removal("nbh_x") == "table inet nbh_x\ndelete table inet nbh_x\n"  # present or not


def test_resolvers_are_read_from_resolv_conf():
    text = "# comment\nsearch example.org\nnameserver 10.255.255.53\nnameserver fe80::1%eth0\nnameserver bogus\n"
    assert nameservers(text) == [ip("10.255.255.53"), ip("fe80::1")]


def test_the_table_name_is_a_plain_identifier():
    with pytest.raises(ValueError, match="egress_table"):
        Settings(egress_table="x; flush ruleset")
    assert Settings(egress_allow=["10.1.2.0/24"]).egress_allow == (net("10.1.2.0/24"),)
    with pytest.raises(ValueError, match="egress_allow"):
        Settings(egress_allow=["10.1.2.3/24"])  # host bits set: say the network


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None, reason="nft -c needs root and nft")
def test_nft_accepts_the_ruleset(tmp_path):
    script = tmp_path / "egress.nft"
    script.write_text(
        rules(allow=["10.1.2.0/24", "fd00:1::/64"], resolvers=["10.255.255.53", "fd00::53"], table="nbh_check")
    )
    subprocess.run(["nft", "-c", "-f", str(script)], check=True, capture_output=True)  # -c: checked, not applied


def test_a_host_without_nft_is_not_prepared_when_egress_is_on(tmp_path):
    from nbhosting_core import EgressUnfiltered, SubprocessRunner
    from nbhosting_core.system.nftables import ensure_egress_filter

    on = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run", egress=True)
    with pytest.raises(EgressUnfiltered) as refused:
        ensure_egress_filter(on, SubprocessRunner(), find_nft=lambda: None)
    assert "nft is missing" in refused.value.message and "NBH_EGRESS=false" in refused.value.log_detail
    off = on.model_copy(update={"egress": False})
    assert ensure_egress_filter(off, SubprocessRunner(), find_nft=lambda: None) is False  # nothing to filter
