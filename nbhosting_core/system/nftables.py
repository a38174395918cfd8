"""The egress filter on the host: nftables, through ``nft`` (as root).

:func:`ensure_egress_filter` installs :func:`nbhosting_core.egress.ruleset` when ``egress`` is on, and removes the
table when it is off; :mod:`.layout` calls it at every start. The script is written to ``RUN_DIR/egress.nft``
(what was installed last, for the admin to read) and applied with ``nft -f``, one atomic transaction.

With ``egress`` on and no way to filter (``nft`` missing, or refusing the rules), the host is not prepared:
:class:`~nbhosting_core.errors.EgressUnfiltered` stops ``nbh serve`` with what to do, rather than let kernels
reach the cloud's metadata and the private network unfiltered, or silently take every kernel's network away.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..egress import REFUSE_CHAIN, IPAddress, nameservers, removal, ruleset, student_uids
from ..errors import CommandFailed, EgressUnfiltered
from .runner import CommandRunner
from .tree import write_atomic

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)
RESOLV_CONF = Path("/etc/resolv.conf")


def nft() -> str | None:
    """The ``nft`` command, or None if it is not installed."""
    return shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.access(p, os.X_OK)), None)


def host_resolvers(path: Path = RESOLV_CONF) -> list[IPAddress]:
    """The host's DNS resolvers, as ``/etc/resolv.conf`` names them."""
    try:
        return nameservers(path.read_text())
    except OSError:
        return []


def ensure_egress_filter(
    settings: Settings, runner: CommandRunner, *, find_nft: Callable[[], str | None] = nft
) -> bool:
    """Install the egress filter if ``settings.egress`` (replacing any earlier one), else remove it; idempotent.

    Returns True if a filter is installed now. ``find_nft``: where ``nft`` is (None: not installed).

    Raises:
        EgressUnfiltered: egress is on, and the filter cannot be installed.
    """
    command = find_nft()
    if not settings.egress:
        if command is not None and remove_egress_filter(settings, runner):
            log.info("egress is off: the filter table inet %s is removed", settings.egress_table)
        return False
    if command is None:
        raise EgressUnfiltered(
            "Kernels' network cannot be filtered on this host: nft is missing.",
            log_detail="apt-get install nftables, or set NBH_EGRESS=false (kernels get no network)",
        )
    script = ruleset(
        settings.egress_table,
        student_uids(settings),
        list(settings.egress_allow),
        host_resolvers(),
    )
    path = _write(settings.run_dir / "egress.nft", script)
    try:
        runner.run([command, "-f", str(path)], timeout=30)
    except CommandFailed as exc:
        raise EgressUnfiltered(
            "Kernels' network cannot be filtered on this host: nft refused the rules.",
            log_detail=f"{path}: {exc.log_detail}",
        ) from exc
    log.info(
        "egress filter installed: table inet %s, uids %s, allowed %s",
        settings.egress_table,
        student_uids(settings),
        [str(n) for n in settings.egress_allow] or "nothing more",
    )
    return True


def remove_egress_filter(settings: Settings, runner: CommandRunner) -> bool:
    """Remove the egress filter's table if it is there; True if it was."""
    command = nft()
    if command is None or not egress_filter_installed(settings, runner):
        return False
    path = _write(settings.run_dir / "egress.nft", removal(settings.egress_table))
    runner.run([command, "-f", str(path)], timeout=30)
    return True


def egress_filter_installed(settings: Settings, runner: CommandRunner) -> bool:
    """True if the egress filter's table is on the host now."""
    command = nft()
    if command is None:
        return False
    try:
        runner.run([command, "list", "table", "inet", settings.egress_table], timeout=30)
    except CommandFailed:
        return False
    return True


def refused_packets(settings: Settings, runner: CommandRunner) -> int | None:
    """How many packets the filter has refused since it was installed (None: no filter)."""
    command = nft()
    if command is None:
        return None
    try:
        out = runner.run([command, "-j", "list", "chain", "inet", settings.egress_table, REFUSE_CHAIN], timeout=30)
    except CommandFailed:
        return None
    for item in json.loads(out).get("nftables", []):
        for expr in item.get("rule", {}).get("expr", []):
            if "counter" in expr:
                return int(expr["counter"]["packets"])
    return None


def _write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (root-only, replaced whole, never through a link)."""
    write_atomic(path.parent, path.name, text.encode(), mode=0o600)
    return path
