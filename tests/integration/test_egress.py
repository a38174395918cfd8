"""The egress filter on a real host: installed, replaced and removed by the host preparation; what a student's
processes (a kernel through slirp4netns, or any process of their uid) can reach; and that no one else is touched.

Each installation has its own nftables table and uid range (tests/support.py). There is no internet here: an
address in ``egress_allow`` (the host's own) stands for "allowed".
"""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from nbhosting_core import Hub, Settings, ensure_layout
from nbhosting_core.system.nftables import ensure_egress_filter, refused_packets
from nbhosting_core.system.runner import SubprocessRunner
from nbhosting_server.demo import ensure_demo_course
from tests.support import TEST_UID_MAX, Kernel, installation

pytestmark = pytest.mark.podman
RUNNER = SubprocessRunner()
PYTHON = "/usr/bin/python3"  # the system's: readable by any uid


def host_address(version: int) -> str | None:
    """One of the host's own addresses that is not loopback (nor link-local), or None."""
    out = subprocess.run(["ip", "-j", f"-{version}", "addr", "show", "scope", "global"], capture_output=True, text=True)
    for link in json.loads(out.stdout or "[]"):
        for info in link.get("addr_info", []):
            if not ipaddress.ip_address(info["local"]).is_loopback:
                return str(info["local"])
    return None


def tables() -> list[str]:
    out = subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, text=True, check=True).stdout
    return [f"{t['table']['family']} {t['table']['name']}" for t in json.loads(out)["nftables"] if "table" in t]


class Listener:
    """A TCP listener of root's on every address of the host: who connected, and what they sent."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET6)
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.sock.bind(("::", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    self.received.append(conn.recv(100))
                except OSError:
                    self.received.append(b"")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@contextmanager
def listening() -> Iterator[Listener]:
    listener = Listener()
    try:
        yield listener
    finally:
        listener.close()


PROBE = """
import socket, sys
def probe(host, port, kind="tcp"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    s.settimeout(10)
    try:
        if kind == "tcp":
            s.connect((host, port)); s.sendall(b"hello"); return "connected"
        s.sendto(b"x", (host, port)); return "sent"
    except OSError as exc:
        return type(exc).__name__
    finally:
        s.close()
"""


def as_uid(uid: int, probes: list[tuple[str, int, str]]) -> list[str]:
    """Run the probes in a host process of ``uid`` (a student's uid needs no account for this)."""
    code = PROBE + f"print(__import__('json').dumps([probe(*p) for p in {probes!r}]))"
    argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", PYTHON, "-c", code]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout)


def in_kernel(kernel: Kernel, probes: list[tuple[str, int, str]]) -> list[str]:
    out = kernel.run(PROBE + f"print(__import__('json').dumps([probe(*p) for p in {probes!r}]))", timeout=90)
    assert out["error"] is None, out
    return json.loads(str(out["stdout"]))


# ------------------------------------------------------------------------------------- install, replace, remove


def test_the_host_preparation_installs_replaces_and_removes_the_filter():
    with installation(None, egress=True) as settings:
        table = f"inet {settings.egress_table}"
        ensure_layout(settings)
        ensure_layout(settings)  # idempotent: the same one table
        assert tables().count(table) == 1
        assert (settings.run_dir / "egress.nft").read_text().startswith("# nbhosting")
        wider = settings.model_copy(update={"egress_allow": (ipaddress.ip_network("10.1.2.0/24"),)})
        ensure_layout(wider)  # replaced whole, with the new exception
        allowed = subprocess.run(
            ["nft", "list", "set", "inet", settings.egress_table, "allowed4"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "10.1.2.0/24" in allowed and tables().count(table) == 1
        ensure_layout(settings.model_copy(update={"egress": False}))  # egress off: no filter left
        assert table not in tables()
        ensure_layout(settings.model_copy(update={"egress": False}))  # removing what is not there: nothing
    assert table not in tables()


# ------------------------------------------------------------------------------------- a student's host processes


def test_a_students_processes_are_refused_the_host_private_and_link_local_ranges_and_root_is_not():
    host4, host6 = host_address(4), host_address(6)
    with installation(None, egress=True) as settings, listening() as listener:
        ensure_layout(settings)
        targets = [("127.0.0.1", listener.port, "tcp"), ("10.255.255.1", 80, "tcp"), ("169.254.169.254", 80, "tcp")]
        targets.append(("::1", listener.port, "tcp"))
        if host4:
            targets.append((host4, listener.port, "tcp"))
        if host6:  # IPv6 is routed here: the host's own address, and AWS's metadata address (unique local)
            targets += [(host6, listener.port, "tcp"), ("fd00:ec2::254", 80, "udp")]
        before = refused_packets(settings, RUNNER) or 0
        for uid in (TEST_UID_MAX, settings.subid_base + 5):  # a student's uid, and one of the subordinate ids
            results = as_uid(uid, targets)
            assert all(r in ("ConnectionRefusedError", "PermissionError") for r in results), (uid, targets, results)
        assert (refused_packets(settings, RUNNER) or 0) > before
        assert listener.received == []
        # root (this test) and any other user are not matched
        assert as_uid(0, [(host4 or "127.0.0.1", listener.port, "tcp")]) == ["connected"]
        assert as_uid(65534, [("127.0.0.1", listener.port, "tcp")]) == ["connected"]


def test_dns_to_the_hosts_resolvers_stays_open_to_students():
    from nbhosting_core.system.nftables import host_resolvers

    private = [a for a in host_resolvers() if a.is_private and a.version == 4]
    if not private:
        pytest.skip("the host's resolver is not in a refused range: nothing to show")
    with installation(None, egress=True) as settings:
        ensure_layout(settings)
        resolver = str(private[0])
        assert as_uid(TEST_UID_MAX, [(resolver, 53, "udp"), (resolver, 54, "udp")]) == ["sent", "PermissionError"]


# ------------------------------------------------------------------------------------- a kernel, through slirp4netns


@pytest.fixture(scope="module")
def egress_settings(rootfs) -> Iterator[Settings]:
    with installation(rootfs, egress=True) as s:
        ensure_layout(s)
        ensure_demo_course(s.courses_dir)
        yield s


@pytest.fixture(scope="module")
def kernel(egress_settings) -> Kernel:
    hub = Hub(egress_settings)
    launch = hub.wait_ready(hub.open_notebook("demo", "01-welcome.ipynb", f"egress-{uuid.uuid4().hex[:6]}"), timeout=90)
    return Kernel(egress_settings, hub.secret, launch.key)


def test_a_kernel_is_refused_the_hosts_own_address_private_ranges_and_the_metadata_service(egress_settings, kernel):
    host4 = host_address(4)
    if host4 is None:
        pytest.skip("the host has no global IPv4 address")
    with listening() as listener:
        before = refused_packets(egress_settings, RUNNER) or 0
        probes = [(host4, listener.port, "tcp"), ("10.255.255.1", 80, "tcp"), ("169.254.169.254", 80, "tcp")]
        assert in_kernel(kernel, probes) == ["ConnectionRefusedError"] * 3
        assert (refused_packets(egress_settings, RUNNER) or 0) >= before + 3  # refused by the filter, not the network
        assert listener.received == []
        root = socket.create_connection((host4, listener.port), timeout=10)  # root, meanwhile: not affected
        root.sendall(b"root")
        root.close()


def test_an_address_in_egress_allow_is_reached_until_it_is_taken_out(egress_settings, kernel):
    host4 = host_address(4)
    if host4 is None:
        pytest.skip("the host has no global IPv4 address")
    allowed = egress_settings.model_copy(update={"egress_allow": (ipaddress.ip_network(f"{host4}/32"),)})
    with listening() as listener:
        try:
            ensure_egress_filter(allowed, RUNNER)  # replaced live: the running kernel's next connection sees it
            assert in_kernel(kernel, [(host4, listener.port, "tcp"), ("10.255.255.1", 80, "tcp")]) == [
                "connected",
                "ConnectionRefusedError",
            ]
        finally:
            ensure_egress_filter(egress_settings, RUNNER)
        assert in_kernel(kernel, [(host4, listener.port, "tcp")]) == ["ConnectionRefusedError"]
        assert listener.received == [b"hello"]
