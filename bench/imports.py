"""Which imports weigh most in a Jupyter server or kernel: memory and import time per top-level package.

Run inside the image's root filesystem (``chroot``, as nobody, no bytecode written: the rootfs stays untouched), in
two fresh interpreters: ``python -X importtime`` gives each package's own import time and the order packages finish
loading (dependencies first); a second interpreter imports the top-level packages in the order they finished, then every
module in the order it finished, and records its resident memory (VmRSS) after each: a package is charged what its
own modules add on top of what they depend on (an approximation: a package's ``__init__`` imports are charged to
it). The chroot runs in a mount namespace of its own, with a /proc of its own.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

PYTHON = "/opt/jupyter/bin/python"
#: what a server imports (jupyter_server and the extensions the image enables) and what a kernel imports
SERVER = ("jupyter_server.serverapp", "jupyterlab.labapp", "notebook.app", "jupyter_server_terminals.app")
KERNEL = ("ipykernel.kernelapp",)

_MEASURE = """
import importlib, json, sys
def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
out = {}
last = rss()
out["(interpreter)"] = last
for name in json.loads(sys.argv[1]):
    if name in sys.modules:
        continue
    try:
        importlib.import_module(name)
    except Exception:
        continue
    now = rss()
    top = name.split(".")[0]
    out[top] = out.get(top, 0) + now - last
    last = now
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Weight:
    package: str
    mib: float  # RSS it adds, on top of the packages imported before it
    seconds: float  # its modules' own import time (``-X importtime`` self)


def parse_importtime(stderr: str) -> tuple[list[str], dict[str, float]]:
    """Modules in the order they finish loading, and each top-level package's own import seconds (pure)."""
    order: list[str] = []
    micros: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line
        module = fields[2].strip()
        package = module.split(".")[0]
        order.append(module)
        micros[package] = micros.get(package, 0) + int(fields[0])
    return order, {package: us / 1e6 for package, us in micros.items()}


def _chrooted(rootfs: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    # a mount namespace of its own with a /proc for the chroot: the rootfs, shared and read-only, is left as it is
    ns = ["unshare", "--mount", "--pid", "--fork", f"--mount-proc={rootfs}/proc"]
    env = ["env", "-i", "HOME=/tmp", "PATH=/opt/jupyter/bin:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE=1"]
    command = [*ns, "chroot", "--userspec=65534:65534", str(rootfs), *env, PYTHON, *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def weights(rootfs: Path, modules: tuple[str, ...]) -> list[Weight]:
    """What importing ``modules`` costs, per top-level package, heaviest first."""
    imports = "; ".join(f"import {m}" for m in modules)
    modules_done, own = parse_importtime(_chrooted(rootfs, "-X", "importtime", "-c", imports).stderr)
    order = [m for m in modules_done if "." not in m] + modules_done  # packages' __init__ first, then the rest
    grown: dict[str, int] = json.loads(_chrooted(rootfs, "-c", _MEASURE, json.dumps(order)).stdout)
    found = [Weight(p, grown.get(p, 0) / 1024, s) for p, s in own.items()]
    found.append(Weight("(interpreter)", grown.get("(interpreter)", 0) / 1024, 0.0))
    return sorted(found, key=lambda w: -w.mib)
