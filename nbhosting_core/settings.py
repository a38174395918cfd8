"""Settings: the only place that reads the environment (``NBH_*`` variables).

Read them once at the edge (the CLI, ``create_app``) and pass the object down; library code never looks
at ``os.environ``. Every path nbhosting writes is derived from ``data_root`` (persistent state) or
``run_dir`` (runtime state that must vanish at reboot, like podman's runtime directories).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent


class Settings(BaseSettings):
    """All of nbhosting's settings, with their defaults; each can be set as ``NBH_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="NBH_", extra="forbid", frozen=True)

    data_root: Path = Field(
        Path("/var/lib/nbhosting"),
        description="Persistent state: courses/, students/ (homes and workspaces), images/, the secret.",
    )
    run_dir: Path = Field(
        Path("/run/nbhosting"),
        description="Runtime state that must not survive a reboot: per-user podman runtime dirs, "
        "Jupyter sockets, locks. Keep it on a tmpfs.",
    )
    images_dir: Path | None = Field(None, description="Built root filesystems; default DATA_ROOT/images.")
    image_rootfs: Path | None = Field(
        None,
        description="The exploded root filesystem every student's container runs from (read-only). "
        "Set by `nbh serve` after building the image.",
    )
    containers_conf: Path = Field(
        PACKAGE_DIR / "system" / "containers.conf",
        description="containers.conf used by every podman nbhosting runs (passed as CONTAINERS_CONF).",
    )
    url_prefix: str = Field("nb", description="Notebook servers live under /<url_prefix>/<key>/.")
    ui: Literal["notebook", "lab"] = Field(
        "notebook", description="Which UI a launch opens: Notebook 7 (one document) or JupyterLab."
    )
    public_url: str = Field("https://localhost:8443", description="Where browsers reach Caddy.")
    site_address: str = Field("localhost", pattern=r"^[A-Za-z0-9.-]+$",
                              description="Caddy's site address (a domain for real TLS).")
    https_port: int = Field(8443, ge=1, le=65535, description="Caddy's HTTPS port.")
    http_port: int = Field(8080, ge=1, le=65535, description="Caddy's HTTP port (ACME challenges, redirects).")
    tls_cert: Path | None = Field(None, description="A certificate file; default Caddy's internal CA.")
    tls_key: Path | None = Field(None, description="The key of tls_cert.")
    frame_ancestors: str = Field(
        "*", pattern=r"^[A-Za-z0-9*'.:/ _-]+$",
        description="Who may embed notebooks in an iframe (CSP frame-ancestors): set it to your course "
        "platform's origin in production, e.g. \"'self' https://courses.example.org\".",
    )
    app_host: str = Field("127.0.0.1", pattern=r"^[A-Za-z0-9.:-]+$",
                          description="Where the Starlette app listens (Caddy's upstream).")
    app_port: int = Field(8710, ge=1, le=65535, description="Port of the Starlette app.")
    start_timeout: float = Field(60.0, gt=0, description="Seconds a notebook server may take to answer.")
    ready_poll_interval: float = Field(
        0.05, gt=0, description="Seconds between readiness probes (fixed: no back-off to wait out)."
    )
    egress: bool = Field(True, description="Give kernels outbound network (slirp4netns); HTTP to "
                         "Jupyter always goes through its Unix socket.")
    user_prefix: str = Field("nbh-", pattern=r"^[a-z][a-z0-9]{0,5}-$",
                             description="Prefix of students' Linux user names (then 24 hex digits).")
    uid_min: int = Field(1_000_000, description="First uid given to student accounts.")
    uid_max: int = Field(1_999_999, description="Last uid given to student accounts.")
    subid_base: int = Field(2**31, description="Start of the subuid/subgid space for students.")
    subid_count: int = Field(1024, ge=1, description="Size of each student's subuid/subgid range; "
                             "narrow so a host can hold millions of students.")
    podman_service_idle: int = Field(
        120, ge=1, description="Seconds a student's podman API service lingers when idle."
    )
    cookie_max_age: int = Field(12 * 3600, gt=0, description="Lifetime of a notebook access cookie.")

    @field_validator("url_prefix")
    @classmethod
    def _slug_prefix(cls, value: str) -> str:
        if not value.isascii() or not value.replace("-", "").isalnum() or not value.islower():
            raise ValueError("url_prefix must be a lower-case slug such as 'nb'")
        return value

    @property
    def courses_dir(self) -> Path:
        """One folder per course: DATA_ROOT/courses/<course>/."""
        return self.data_root / "courses"

    @property
    def students_dir(self) -> Path:
        """Student homes: DATA_ROOT/students/<user>/<course>/."""
        return self.data_root / "students"

    @property
    def effective_images_dir(self) -> Path:
        """Where root filesystems are built and cached."""
        return self.images_dir or self.data_root / "images"

    @property
    def secret_file(self) -> Path:
        """The server's signing secret (cookies, Jupyter tokens); created on first use, mode 0600."""
        return self.data_root / "secret"

    @property
    def jupyter_sockets_dir(self) -> Path:
        """RUN_DIR/jupyter/<key>/jupyter.sock: Caddy's only upstreams for notebook traffic."""
        return self.run_dir / "jupyter"

    @property
    def users_run_dir(self) -> Path:
        """RUN_DIR/users/<uid>: each student's XDG_RUNTIME_DIR (podman runtime, API socket)."""
        return self.run_dir / "users"

    @property
    def locks_dir(self) -> Path:
        """Lock files shared by every server process."""
        return self.run_dir / "locks"
