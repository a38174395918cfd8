"""The peer's installation, made idempotently in a place of its own (default /opt/nbhosting-peer).

JupyterHub 6.1.1 + DockerSpawner 14.0.0 in a venv from PyPI, configurable-http-proxy 5.3.0 from npm (Debian's
Node), and a single-user image made of nbhosting's own notebook rootfs (``podman import``) with jupyterhub and its
missing dependencies added without resolution (wheels for the image's Python, copied over its site-packages), so
that both systems run the same Jupyter. Each step leaves a stamp; a step whose stamp is there is skipped.

    python -m bench.peerinstall [--place /opt/nbhosting-peer]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PLACE = Path("/opt/nbhosting-peer")
HUB = ["jupyterhub==6.1.1", "dockerspawner==14.0.0"]
PROXY = "configurable-http-proxy@5.3.0"
# what jupyterhub-singleuser imports that nbhosting's image lacks (installed with --no-deps into the image)
IMAGE_EXTRAS = [
    "jupyterhub==6.1.1",
    "alembic",
    "mako",
    "sqlalchemy",
    "greenlet",
    "pamela",
    "oauthlib",
    "certipy",
    "cryptography",
    "aiohttp",
    "aiohappyeyeballs",
    "aiosignal",
    "frozenlist",
    "multidict",
    "propcache",
    "yarl",
    "aiodns",
    "pycares",
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-inspection",
]
IMAGE_REPO = "localhost/nbh-peer-singleuser"


def containers_conf() -> Path:
    """nbhosting's engine configuration (runc, cgroupfs, ulimits): the peer's podman uses it too."""
    import nbhosting_core

    return Path(nbhosting_core.__file__).parent / "system" / "containers.conf"


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(containers_conf())}


def _run(argv: list[str], **kwargs: object) -> None:
    print("[peer] " + " ".join(argv), file=sys.stderr, flush=True)
    subprocess.run(argv, check=True, **kwargs)  # type: ignore[call-overload]


def _stamped(place: Path, name: str) -> bool:
    return (place / "stamps" / name).is_file()


def _stamp(place: Path, name: str) -> None:
    (place / "stamps").mkdir(parents=True, exist_ok=True)
    (place / "stamps" / name).write_text("done\n")


def hub_python(place: Path = PLACE) -> Path:
    return place / "venv" / "bin" / "python"


def chp_bin(place: Path = PLACE) -> Path:
    return place / "node_modules" / ".bin" / "configurable-http-proxy"


def ensure_hub(place: Path = PLACE) -> None:
    """The hub's venv (host Python) with JupyterHub and DockerSpawner from PyPI."""
    if _stamped(place, "venv") and hub_python(place).exists():
        return
    _run([sys.executable, "-m", "venv", "--clear", str(place / "venv")])
    _run([str(hub_python(place)), "-m", "pip", "install", "--quiet", *HUB])
    _stamp(place, "venv")


def ensure_proxy(place: Path = PLACE) -> None:
    """configurable-http-proxy from npm, in the place's own node_modules."""
    if _stamped(place, "chp") and chp_bin(place).exists():
        return
    if shutil.which("node") is None or shutil.which("npm") is None:
        _run(["apt-get", "install", "-y", "-q", "nodejs", "npm"])
    _run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(place), PROXY])
    _stamp(place, "chp")


def image_tag(rootfs: Path) -> str:
    """The single-user image made from ``rootfs`` (one tag per rootfs: a new project image gives a new tag)."""
    digest = hashlib.sha256(f"{rootfs.resolve()}|{' '.join(IMAGE_EXTRAS)}".encode()).hexdigest()[:12]
    return f"{IMAGE_REPO}:{digest}"


def _image_exists(tag: str) -> bool:
    return subprocess.run(["podman", "image", "exists", tag], env=podman_env()).returncode == 0


def _site_packages(rootfs: Path) -> Path:
    [site] = sorted(rootfs.glob("opt/jupyter/lib/python3*/site-packages"))
    return site


def ensure_image(rootfs: Path, place: Path = PLACE) -> str:
    """The peer's single-user image from nbhosting's ``rootfs``; its tag."""
    tag = image_tag(rootfs)
    if _image_exists(tag):
        return tag
    site = _site_packages(rootfs)
    version = site.parent.name.removeprefix("python")  # e.g. 3.11
    with tempfile.TemporaryDirectory(prefix="nbh-peer-image-", dir="/tmp") as tmp:
        work = Path(tmp)
        base = f"{IMAGE_REPO}-base:{hashlib.sha256(str(rootfs.resolve()).encode()).hexdigest()[:12]}"
        if not _image_exists(base):
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            _run(["podman", "import", "-", base], stdin=tar.stdout, env=podman_env(), stdout=subprocess.DEVNULL)
            tar.wait()
        extra = work / "site"
        _run(
            [
                str(hub_python(place)),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                version,
                "--platform",
                "manylinux2014_x86_64",
                "--platform",
                "manylinux_2_28_x86_64",
                "--target",
                str(extra),
                *IMAGE_EXTRAS,
            ]
        )
        # the console script pip wrote has the host's interpreter: jupyterhub-singleuser runs as a module instead
        shutil.rmtree(extra / "bin", ignore_errors=True)
        inside = "/" + str(site.relative_to(rootfs))
        (work / "Containerfile").write_text(f"FROM {base}\nCOPY site/ {inside}/\n")
        _run(["podman", "build", "--quiet", "-t", tag, str(work)], env=podman_env(), stdout=subprocess.DEVNULL)
        remove_other_images(keep=(tag, base))
    return tag


def remove_other_images(keep: tuple[str, ...]) -> None:
    """The peer's images made from an older rootfs (~450 MB each): only this installer's own repositories."""
    listed = subprocess.run(
        ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}"], env=podman_env(), capture_output=True, text=True
    ).stdout.split()
    old = [name for name in listed if name.startswith((f"{IMAGE_REPO}:", f"{IMAGE_REPO}-base:")) and name not in keep]
    if old:
        subprocess.run(["podman", "rmi", *old], env=podman_env(), capture_output=True)


def ensure_all(rootfs: Path, place: Path = PLACE) -> str:
    """Everything the peer needs; the single-user image's tag."""
    place.mkdir(parents=True, exist_ok=True)
    ensure_hub(place)
    ensure_proxy(place)
    return ensure_image(rootfs, place)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--place", type=Path, default=PLACE)
    args = parser.parse_args()
    from tests.support import built_rootfs

    print(ensure_all(built_rootfs(), args.place))


if __name__ == "__main__":
    main()
