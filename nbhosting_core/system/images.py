"""Build the notebook image locally and export it as ONE shared, read-only root filesystem.

Every student container runs from the same exploded directory
(``podman run --rootfs DIR --read-only --userns=keep-id ...``): importing an image into each student's own
rootless store would cost seconds and hundreds of MB per student.

Pipeline (all as root, every podman call with ``CONTAINERS_CONF`` set to nbhosting's own file):

1. a base image: the given ``base_image`` (e.g. ``quay.io/jupyter/base-notebook``), or, with no registry,
   a Debian 12 built once with ``mmdebstrap`` and ``podman import``-ed as
   ``localhost/nbhosting-base:bookworm``;
2. wheels of the pinned Jupyter stack, ``pip download``-ed on the host for the image's Python (CPython 3.11),
   cached under ``images_dir/wheels/``;
3. ``podman build --network none`` of the context (``Containerfile``, ``requirements.txt``, scripts)
   plus the wheels;
4. ``podman create`` + ``podman export`` + ``tar -x`` into a temporary directory, mount targets fixed up,
   everything made world-readable, then renamed atomically to ``images_dir/<context>-<hash12>/rootfs``.

The result is cached by a content hash of the context and the base image name: :func:`ensure_rootfs` is
called at every server start and returns at once when the rootfs exists.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CommandFailed, ImageBuildError
from .locks import file_lock
from .runner import CommandRunner, SubprocessRunner

if TYPE_CHECKING:
    from ..settings import Settings

Log = Callable[[str], None]
log = logging.getLogger(__name__)
#: the default image's build context, shipped inside the package (a wheel install can build it)
DEFAULT_CONTEXT_DIR = Path(__file__).resolve().parents[1] / "containerfiles" / "default"

#: the image built with mmdebstrap when no base image is given (no registry reachable).
LOCAL_BASE_IMAGE = "localhost/nbhosting-base:bookworm"
LOCAL_BASE_SUITE = "bookworm"
LOCAL_BASE_PACKAGES = ("ca-certificates", "python3", "python3-venv", "tini")
#: trimmed from the local base: nobody reads docs, man pages or translations in a notebook container.
LOCAL_BASE_DPKG_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/info/*",
)

#: wheels are downloaded on the host for the image's Python, not the host's: Debian 12 has CPython 3.11.2
#: (glibc 2.36, so manylinux wheels up to 2_36 fit).
WHEEL_PYTHON_VERSION = "3.11"
WHEEL_ABI = "cp311"
WHEEL_PLATFORMS = (
    "manylinux_2_36_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
)

#: files that podman bind-mounts into every container: they must exist in a read-only rootfs.
#: (/run/.containerenv too, but /run is a tmpfs with --read-only: podman creates it there.)
MOUNT_TARGET_FILES = ("etc/hosts", "etc/resolv.conf", "etc/hostname")
#: directories bind-mounted by nbhosting (the student's work dir, the Jupyter socket dir), and the others.
MOUNT_TARGET_DIRS = ("home/student", "nbhosting/run", "proc", "sys", "dev")
#: with --read-only, podman mounts a tmpfs on these and copies their content in ("tmpcopyup"), keeping
#: owners: rootless, a root-owned file there (e.g. /run/lock, /run/.containerenv) makes runc fail with
#: "lchown ...: invalid argument". They must be empty.
TMPFS_DIRS = {"run": 0o755, "tmp": 0o1777, "var/tmp": 0o1777}
#: left unreadable: nothing in a notebook container needs them.
PRIVATE_FILES = ("etc/shadow", "etc/gshadow")

STDERR_TAIL_CHARS = 4000
#: part of the cache key: bump it when what this module does to a rootfs (fix_rootfs, export) changes.
ROOTFS_FORMAT = 1


# --------------------------------------------------------------------------------------------- helpers


def podman_env(containers_conf: Path) -> dict[str, str]:
    """The environment of every podman nbhosting runs as root: this one's, with nbhosting's containers.conf."""
    return {**os.environ, "CONTAINERS_CONF": str(containers_conf)}


def run_step(
    runner: CommandRunner,
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    log: Log | None = None,
    timeout: float = 1800,
) -> str:
    """Run a build step; a failure is an :class:`ImageBuildError` with the end of the step's output."""
    if log is not None:
        return runner.stream(cmd, on_line=log, env=env, timeout=timeout, failure=ImageBuildError)
    try:
        return runner.run(cmd, env=env, timeout=timeout)
    except CommandFailed as exc:
        raise ImageBuildError(exc.argv, exc.returncode, exc.stderr) from exc


def hash_files(root: Path, update: Callable[[bytes], None]) -> None:
    """Feed ``update`` every file under ``root``: its relative name, whether it is executable, its content."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        update(str(path.relative_to(root)).encode() + b"\0")
        update(b"x" if os.access(path, os.X_OK) else b"-")
        update(path.read_bytes() + b"\0")


def context_hash(context_dir: Path, base_image: str) -> str:
    """12 hex digits identifying a rootfs: the build context's files (names, modes, contents), the base
    image's name, the wheels' target and :data:`ROOTFS_FORMAT`."""
    digest = hashlib.sha256()
    digest.update(f"format={ROOTFS_FORMAT}\0base={base_image}\0".encode())
    digest.update(f"wheels={WHEEL_PYTHON_VERSION}/{WHEEL_ABI}\0".encode())
    hash_files(context_dir, digest.update)
    return digest.hexdigest()[:12]


def rootfs_path(context_dir: Path, images_dir: Path, base_image: str | None = None) -> Path:
    """Where :func:`ensure_rootfs` puts (or finds) the rootfs of this build context (it may not exist yet)."""
    base = base_image or LOCAL_BASE_IMAGE
    return images_dir / f"{context_dir.name}-{context_hash(context_dir, base)}" / "rootfs"


def image_tag(folder: str) -> str:
    """Root's podman tag of the image whose rootfs folder is ``images_dir/<folder>``: ``<context>-<hash>`` is
    ``localhost/nbhosting-<context>:<hash>`` (e.g. ``localhost/nbhosting-default:fd5943ea3c88``)."""
    context, _, digest = folder.rpartition("-")
    return f"localhost/nbhosting-{context}:{digest}"


def ensure_tagged(rootfs: Path, *, containers_conf: Path, runner: CommandRunner, log: Log) -> str:
    """Root's podman tag of the image exported to ``rootfs``, made again from the rootfs if it is gone; return it.

    A course's Containerfile builds FROM this tag (its ``BASE_IMAGE``). The tag is normally left by the build;
    a host whose podman store was cleaned gets it back by ``podman import`` of the rootfs (~10 s), no rebuild.
    """
    tag = image_tag(rootfs.parent.name)
    env = podman_env(containers_conf)
    if image_exists(runner, tag, env):
        return tag
    started = time.monotonic()
    tarball = rootfs.parent.with_name(f".{rootfs.parent.name}.import.tar")
    try:
        run_step(runner, ["tar", "-c", "--numeric-owner", "-f", str(tarball), "-C", str(rootfs), "."])
        run_step(runner, ["podman", "import", str(tarball), tag], env=env)
    finally:
        tarball.unlink(missing_ok=True)
    log(f"image {tag} imported again from {rootfs} in {time.monotonic() - started:.1f} s")
    return tag


def remove_stale_temps(images_dir: Path, prefix: str) -> None:
    """Remove what a build that died left under ``images_dir`` (folders named ``prefix...``)."""
    for stale in images_dir.glob(f"{prefix}*"):
        shutil.rmtree(stale, ignore_errors=True)


# ------------------------------------------------------------------------------------------ base image


def image_exists(runner: CommandRunner, image: str, env: dict[str, str]) -> bool:
    """True if root's podman has ``image``."""
    try:
        runner.run(["podman", "image", "exists", image], env=env)
    except CommandFailed:
        return False
    return True


def ensure_local_base(*, images_dir: Path, containers_conf: Path, runner: CommandRunner, log: Log) -> str:
    """Build the Debian base with mmdebstrap and ``podman import`` it, once; return its name."""
    env = podman_env(containers_conf)
    if image_exists(runner, LOCAL_BASE_IMAGE, env):
        return LOCAL_BASE_IMAGE
    with file_lock(images_dir / ".base.lock"):
        if image_exists(runner, LOCAL_BASE_IMAGE, env):
            return LOCAL_BASE_IMAGE
        started = time.monotonic()
        log(f"building the base image {LOCAL_BASE_IMAGE} with mmdebstrap")
        with tempfile.TemporaryDirectory(prefix=".base.", dir=images_dir) as tmp:
            tarball = Path(tmp) / "base.tar"
            cmd = ["mmdebstrap", "--variant=minbase", "--include=" + ",".join(LOCAL_BASE_PACKAGES)]
            cmd += [f"--dpkgopt={opt}" for opt in LOCAL_BASE_DPKG_EXCLUDES]
            run_step(runner, [*cmd, LOCAL_BASE_SUITE, str(tarball)])
            run_step(runner, ["podman", "import", str(tarball), LOCAL_BASE_IMAGE], env=env)
        log(f"base image {LOCAL_BASE_IMAGE} built in {time.monotonic() - started:.1f} s")
    return LOCAL_BASE_IMAGE


# ------------------------------------------------------------------------------------------------ wheels


def ensure_wheels(requirements: Path, *, images_dir: Path, runner: CommandRunner, log: Log) -> Path:
    """Download the wheels of ``requirements`` (and their dependencies) for the image's Python, once.

    Cached in ``images_dir/wheels/<hash12>`` (hash of the requirements and the target); returns that dir.
    """
    digest = hashlib.sha256(requirements.read_bytes())
    digest.update(f"{WHEEL_PYTHON_VERSION}/{WHEEL_ABI}/{','.join(WHEEL_PLATFORMS)}".encode())
    cache = images_dir / "wheels"
    wheels = cache / digest.hexdigest()[:12]
    if wheels.is_dir():
        return wheels
    cache.mkdir(parents=True, exist_ok=True)
    with file_lock(cache / ".lock"):
        if wheels.is_dir():
            return wheels
        remove_stale_temps(cache, f".{wheels.name}.")
        tmp = Path(tempfile.mkdtemp(prefix=f".{wheels.name}.", dir=cache))
        started = time.monotonic()
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
        cmd += ["--only-binary=:all:", "--python-version", WHEEL_PYTHON_VERSION, "--implementation", "cp"]
        cmd += ["--abi", WHEEL_ABI, "--abi", "abi3", "--abi", "none"]
        cmd += [arg for platform in WHEEL_PLATFORMS for arg in ("--platform", platform)]
        run_step(runner, [*cmd, "--dest", str(tmp), "--requirement", str(requirements)])
        tmp.chmod(0o755)
        tmp.rename(wheels)
        log(f"wheels downloaded in {time.monotonic() - started:.1f} s into {wheels}")
    return wheels


# ------------------------------------------------------------------------------------ build and export


def has_requirements(path: Path) -> bool:
    """True if the requirements file ``path`` exists and names something."""
    lines = path.read_text().splitlines() if path.is_file() else []
    return any(line.strip() and not line.lstrip().startswith("#") for line in lines)


def prepare_context(context_dir: Path, wheels: Path | None, dest: Path) -> Path:
    """Copy the build context to ``dest`` and link the wheels (if any) into ``dest/wheels``."""
    shutil.copytree(context_dir, dest, symlinks=True)
    (dest / "wheels").mkdir()
    for wheel in wheels.glob("*.whl") if wheels is not None else []:
        try:
            os.link(wheel, dest / "wheels" / wheel.name)
        except OSError:
            shutil.copy2(wheel, dest / "wheels" / wheel.name)
    return dest


def export_image(runner: CommandRunner, image: str, rootfs: Path, *, env: dict[str, str]) -> None:
    """Explode ``image``'s filesystem into the (new, empty) directory ``rootfs``."""
    container = run_step(runner, ["podman", "create", "--network", "none", image, "/bin/true"], env=env).strip()
    tarball = rootfs.with_name(rootfs.name + ".tar")
    try:
        rootfs.mkdir()
        run_step(runner, ["podman", "export", "--output", str(tarball), container], env=env)
        run_step(runner, ["tar", "-x", "--numeric-owner", "-p", "-f", str(tarball), "-C", str(rootfs)])
    finally:
        tarball.unlink(missing_ok=True)
        try:
            runner.run(["podman", "rm", "--force", container], env=env)
        except CommandFailed as exc:
            log.warning("could not remove the export container %s: %s", container, exc)


def fix_rootfs(rootfs: Path, runner: CommandRunner) -> None:
    """Make ``rootfs`` usable read-only by any rootless user.

    Mount targets exist (a rootless user cannot create them in a read-only rootfs), /etc/mtab is the
    /proc/mounts link, the tmpfs targets are empty, and every file is world-readable, every directory
    world-traversable (the rootless user namespace maps the host's root to nobody).
    """
    for name, mode in TMPFS_DIRS.items():
        shutil.rmtree(rootfs / name, ignore_errors=True)
        (rootfs / name).mkdir(parents=True)
        (rootfs / name).chmod(mode)
    for name in MOUNT_TARGET_DIRS:
        (rootfs / name).mkdir(parents=True, exist_ok=True)
    for name in ("home/student", "nbhosting", "nbhosting/run"):
        (rootfs / name).chmod(0o755)
    for name in MOUNT_TARGET_FILES:
        target = rootfs / name
        if target.is_symlink():  # e.g. Debian's resolv.conf may point outside the rootfs
            target.unlink()
        target.touch(exist_ok=True)
    mtab = rootfs / "etc/mtab"
    if mtab.is_symlink() or mtab.exists():
        mtab.unlink()
    mtab.symlink_to("/proc/mounts")
    run_step(runner, ["chmod", "-R", "a+rX", str(rootfs)])
    rootfs.chmod(0o755)
    for name in PRIVATE_FILES:
        if (rootfs / name).is_file() and not (rootfs / name).is_symlink():
            (rootfs / name).chmod(0o640)


def _build_rootfs(
    *,
    context_dir: Path,
    final: Path,
    base_image: str,
    containers_conf: Path,
    images_dir: Path,
    runner: CommandRunner,
    log: Log,
) -> None:
    """Build the image and explode it into ``final`` (``final/rootfs``), atomically."""
    env = podman_env(containers_conf)
    requirements = context_dir / "requirements.txt"
    wheels = (
        ensure_wheels(requirements, images_dir=images_dir, runner=runner, log=log)
        if has_requirements(requirements)
        else None
    )
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=images_dir))
    try:
        context = prepare_context(context_dir, wheels, tmp / "context")
        tag = image_tag(final.name)
        started = time.monotonic()
        cmd = ["podman", "build", "--network", "none", "--build-arg", f"BASE_IMAGE={base_image}"]
        run_step(runner, [*cmd, "--file", str(context / "Containerfile"), "--tag", tag, str(context)], env=env, log=log)
        log(f"image {tag} built in {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        export_image(runner, tag, tmp / "rootfs", env=env)
        fix_rootfs(tmp / "rootfs", runner)
        shutil.rmtree(context)
        tmp.chmod(0o755)
        tmp.rename(final)
        log(f"rootfs exported in {time.monotonic() - started:.1f} s to {final / 'rootfs'}")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def ensure_rootfs(
    *,
    context_dir: Path,
    images_dir: Path,
    containers_conf: Path,
    base_image: str | None = None,
    runner: CommandRunner | None = None,
    log: Log = print,
) -> Path:
    """Return the directory of a root filesystem ready for ``podman run --rootfs DIR --read-only``.

    ``context_dir``: the build context (``Containerfile``, ``requirements.txt``, scripts).
    ``images_dir``: where rootfs directories, wheels and locks are kept (world-traversable: students'
    podman reads the rootfs from there). ``containers_conf``: nbhosting's containers.conf, passed to every
    podman call as ``CONTAINERS_CONF``. ``base_image``: the image to build FROM; None builds a local Debian
    base (no registry needed). Cached as ``images_dir/<context-name>-<hash12>/rootfs``: returns at once when
    it exists, builds it otherwise (one builder at a time, under a file lock). Runs as root.

    Raises:
        ImageBuildError: a build step failed (its command and the end of its output).
    """
    runner = runner or SubprocessRunner()
    context_dir = context_dir.resolve()
    images_dir = images_dir.resolve()
    base = base_image or LOCAL_BASE_IMAGE
    final = rootfs_path(context_dir, images_dir, base_image).parent
    if (final / "rootfs").is_dir():
        return final / "rootfs"
    images_dir.mkdir(parents=True, exist_ok=True)
    images_dir.chmod(0o755)
    with file_lock(images_dir / f".{context_dir.name}.lock"):
        if (final / "rootfs").is_dir():
            return final / "rootfs"
        remove_stale_temps(images_dir, f".{final.name}.")
        log(f"building the notebook image {final.name} (context {context_dir}, base {base})")
        if base_image is None:
            ensure_local_base(images_dir=images_dir, containers_conf=containers_conf, runner=runner, log=log)
        _build_rootfs(
            context_dir=context_dir,
            final=final,
            base_image=base,
            containers_conf=containers_conf,
            images_dir=images_dir,
            runner=runner,
            log=log,
        )
    return final / "rootfs"


def ensure_default_rootfs(
    settings: Settings, *, runner: CommandRunner | None = None, log: Log = lambda line: None
) -> Path:
    """The default image's rootfs for ``settings`` (``settings.image_rootfs`` if set), built if needed.

    Raises:
        ImageBuildError: a build step failed.
    """
    if settings.image_rootfs is not None:
        return settings.image_rootfs
    return ensure_rootfs(
        context_dir=DEFAULT_CONTEXT_DIR,
        images_dir=settings.effective_images_dir,
        containers_conf=settings.containers_conf,
        runner=runner,
        log=log,
    )
