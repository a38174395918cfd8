"""The backends the contract suite runs against: the in-memory fake always, rootless podman as root."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nbhosting_core import Account, AccountStore, FakeAccounts, FakeBackend, NotebookBackend, Server


@dataclass
class Env:
    """A backend, accounts to launch for, and the few things the contract needs that no backend offers."""

    backend: NotebookBackend
    accounts: AccountStore
    workspaces: Path
    kill: Callable[[Server], None]  # make the server's Jupyter die, as a crash would
    set_image: Callable[[str], None]  # what new servers run from now on ("old" / "new")
    image: Callable[[str], str]  # the image "old" / "new" as ensure_running takes it
    ready_timeout: float

    def workspace(self, account: Account, course: str) -> Path:
        folder = account.home / course
        folder.mkdir(exist_ok=True)
        if folder.stat().st_uid != account.uid:
            import os

            os.chown(folder, account.uid, account.gid)
        return folder

    def wait_ready(self, server: Server) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while not self.backend.is_ready(server):
            assert time.monotonic() < deadline, f"{server.name} not ready after {self.ready_timeout} s"
            time.sleep(0.05)

    def wait_stopped(self, account: Account, course: str) -> Server:
        deadline = time.monotonic() + 20
        while True:
            server = self.backend.get(account, course)
            assert server is not None
            if server.state.value != "running":
                return server
            assert time.monotonic() < deadline, f"{server.name} still runs after its Jupyter was killed"
            time.sleep(0.1)


def fake_env(tmp_root: Path) -> Env:
    backend = FakeBackend()

    def set_image(tag: str) -> None:
        backend.image = f"fake-{tag}"

    return Env(
        backend=backend,
        accounts=FakeAccounts(tmp_root / "students"),
        workspaces=tmp_root,
        kill=lambda server: backend.crash(server.name),
        set_image=set_image,
        image=lambda tag: f"fake-{tag}",
        ready_timeout=1,
    )


def podman_env(settings) -> Env:  # type: ignore[no-untyped-def]
    from nbhosting_core import Accounts, PodmanBackend, SubprocessRunner
    from nbhosting_core.system.secretfile import load_or_create_secret, secret_owners

    runner = SubprocessRunner()
    images = {"old": settings.image_rootfs, "new": settings.data_root / "rootfs-new"}
    state = {"settings": settings}

    def backend_now() -> PodmanBackend:
        return PodmanBackend(
            state["settings"],
            secret=load_or_create_secret(settings.secret_file, owners=secret_owners(settings.app_user)),
            runner=runner,
        )

    class Switching:
        """The podman backend, rebuilt when the configured image changes (settings are frozen)."""

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(backend_now(), name)

    def set_image(tag: str) -> None:
        state["settings"] = settings.model_copy(update={"image_rootfs": images[tag]})

    def kill(server: Server) -> None:
        subprocess.run(["pkill", "-KILL", "-U", str(server.uid), "-f", "jupyter-server"], check=True)

    return Env(
        backend=Switching(),
        accounts=Accounts(settings, runner),  # type: ignore[arg-type]
        workspaces=settings.students_dir,
        kill=kill,
        set_image=set_image,
        image=lambda tag: str(images[tag]),
        ready_timeout=60,
    )


@pytest.fixture(scope="module")
def podman_settings():
    from nbhosting_core import ensure_layout
    from tests.integration.conftest import require_podman_host
    from tests.support import built_rootfs, installation

    require_podman_host()
    with installation(built_rootfs()) as settings:
        ensure_layout(settings)
        # a second "image": the same rootfs at another path (as a rebuild gives: a new rootfs directory). A bind
        # mount, made before any student's podman starts (runc refuses a symlink as rootfs)
        alias = settings.data_root / "rootfs-new"
        alias.mkdir()
        subprocess.run(["mount", "--bind", "-o", "ro", str(settings.image_rootfs), str(alias)], check=True)
        yield settings


@pytest.fixture(params=["fake", pytest.param("podman", marks=pytest.mark.podman)])
def env(request, tmp_path) -> Iterator[Env]:
    if request.param == "fake":
        yield fake_env(tmp_path)
    else:
        yield podman_env(request.getfixturevalue("podman_settings"))
