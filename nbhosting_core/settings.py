"""Settings: the only place that reads the environment (``NBH_*`` variables).

Read them once at the edge (the CLI, ``create_app``) and pass the object down; library code never looks
at ``os.environ``. Every path nbhosting writes is derived from ``data_root`` (persistent state) or
``run_dir`` (runtime state that must vanish at reboot, like podman's runtime directories).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, IPvAnyNetwork, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .naming import USER_PREFIX, USER_PREFIX_RE

PACKAGE_DIR = Path(__file__).resolve().parent
#: frame-ancestors sources that let any site (any https: or http: site) frame a page
BROAD_SOURCES = frozenset({"*", "https:", "http:", "https://*", "http://*"})
_HOSTNAME_RE = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


def is_local_host(host: str) -> bool:
    """True for the loopback's names: localhost, any *.localhost, 127.0.0.1, ::1 (pure)."""
    host = host.lower().strip("[]")
    return host in ("localhost", "127.0.0.1", "::1") or host.endswith(".localhost")


def _is_hostname(value: str) -> bool:
    """True for a DNS host name (at least one letter: not an IPv4 address)."""
    return bool(_HOSTNAME_RE.match(value.lower()))


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
    site_address: str = Field(
        "localhost", pattern=r"^[A-Za-z0-9.-]+$", description="Caddy's site address (a domain for real TLS)."
    )
    https_port: int = Field(8443, ge=1, le=65535, description="Caddy's HTTPS port.")
    http_port: int = Field(8080, ge=1, le=65535, description="Caddy's HTTP port (ACME challenges, redirects).")
    tls_cert: Path | None = Field(None, description="A certificate file; default Caddy's internal CA.")
    tls_key: Path | None = Field(None, description="The key of tls_cert.")
    origin_mode: Literal["subdomain", "path"] = Field(
        "subdomain",
        description="Where each notebook server is served: 'subdomain', on its own origin "
        "https://<key>.<servers_domain>/ (needs a wildcard DNS record, none for *.localhost), or 'path', under the "
        "site's origin at /<url_prefix>/<key>/ (one origin shared by every student's server: see the README).",
    )
    servers_domain: str | None = Field(
        None,
        pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$",
        description="In origin mode 'subdomain', the domain under which each server has its host "
        "<key>.<servers_domain>; default nb.<site_address>.",
    )
    servers_tls: Literal["internal", "files", "on_demand"] = Field(
        "internal",
        description="How the servers' hosts get certificates: 'internal' (one wildcard certificate from Caddy's "
        "own CA), 'files' (the admin's wildcard certificate: servers_tls_cert, servers_tls_key), or 'on_demand' "
        "(one certificate per server's host from an ACME CA, asked for when a server's host is first visited, "
        "only for keys of existing servers).",
    )
    servers_tls_cert: Path | None = Field(
        None, description="servers_tls 'files': the certificate of *.<servers_domain>."
    )
    servers_tls_key: Path | None = Field(None, description="servers_tls 'files': the key of servers_tls_cert.")
    frame_ancestors: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9*'.:/ _-]+$",
        description="An explicit CSP frame-ancestors for notebooks and nbhosting's pages (who may embed them in an "
        "iframe), instead of the default: 'self', the site, and every trusted platform's origins. '*' is refused "
        "unless the site is localhost.",
    )
    app_host: str = Field(
        "127.0.0.1", pattern=r"^[A-Za-z0-9.:-]+$", description="Where the Starlette app listens (Caddy's upstream)."
    )
    app_port: int = Field(8710, ge=1, le=65535, description="Port of the Starlette app.")
    app_user: str = Field(
        "nbhosting",
        pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
        description="The unprivileged system user the web app runs as (made by `nbh serve` if missing); it holds "
        "the signing secret and the app's state, and reaches the host only through the privileged helper.",
    )
    caddy_user: str = Field(
        "nbhosting-caddy",
        pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
        description="The unprivileged system user Caddy runs as (made by `nbh serve` if missing); its group may "
        "dial the students' Jupyter sockets, and nothing else of theirs.",
    )
    helper_timeout: float = Field(
        30.0, gt=0, le=600, description="Seconds the app waits for the privileged helper to answer one request."
    )
    helper_workers: int = Field(
        16, ge=1, le=256, description="Requests the privileged helper serves at once (more wait their turn)."
    )
    start_timeout: float = Field(60.0, gt=0, description="Seconds a notebook server may take to answer.")
    ready_poll_interval: float = Field(
        0.05, gt=0, description="Seconds between readiness probes (fixed: no back-off to wait out)."
    )
    kernel_prestart: bool = Field(
        True,
        description="Start the notebook's kernel (a Jupyter session, the kernel its metadata names) as soon as a "
        "launch finds its server ready, in the background, so that the UI finds it running; never for a notebook "
        "that has a session already.",
    )
    egress: bool = Field(
        True,
        description="Give kernels outbound network (slirp4netns); HTTP to Jupyter always goes through its Unix socket. "
        "Filtered (see nbhosting_core.egress): the host's own addresses, private, loopback and link-local ranges "
        "(cloud metadata) are refused, unless in egress_allow. Needs nft on the host.",
    )
    egress_allow: tuple[IPvAnyNetwork, ...] = Field(
        (),
        description="Networks kernels may reach although the egress filter refuses them by default, e.g. "
        '["10.1.2.0/24"] (a course\'s database on the private network).',
    )
    egress_table: str = Field(
        "nbhosting",
        pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$",
        description="The nftables table (family inet) of the egress filter; one per installation on a host.",
    )
    user_prefix: str = Field(
        USER_PREFIX,
        pattern=USER_PREFIX_RE.pattern,
        description="Prefix of students' Linux user names (then 24 hex digits).",
    )
    uid_min: int = Field(1_000_000, description="First uid given to student accounts.")
    uid_max: int = Field(1_999_999, description="Last uid given to student accounts.")
    subid_base: int = Field(2**31, description="Start of the subuid/subgid space for students.")
    subid_count: int = Field(
        1024,
        ge=1,
        description="Size of each student's subuid/subgid range; narrow so a host can hold millions of students.",
    )
    podman_service_idle: int = Field(120, ge=1, description="Seconds a student's podman API service lingers when idle.")
    cookie_max_age: int = Field(12 * 3600, gt=0, description="Lifetime of a notebook access cookie.")
    platforms_file: Path | None = Field(
        None,
        description="The platforms nbhosting trusts (TOML, see nbhosting_core.platforms); default "
        "DATA_ROOT/platforms.toml. No file: no launch from outside.",
    )
    signed_launch_max_ttl: int = Field(
        24 * 3600, gt=0, description="How far ahead a signed launch URL may expire (seconds): longer ones are refused."
    )

    # --- LTI launches (see nbhosting_core.lti)
    lti_timestamp_window: int = Field(
        300,
        ge=30,
        le=3600,
        description="LTI 1.1: how far (seconds, either side) a launch's oauth_timestamp may be from this host's "
        "clock; each nonce is remembered that long, so a launch is accepted once.",
    )
    lti_state_ttl: int = Field(
        600,
        ge=30,
        le=3600,
        description="LTI 1.3: seconds a login may take from nbhosting's redirect to the platform until the launch "
        "comes back (the life of the signed state and of its nonce).",
    )
    lti_leeway: int = Field(
        30, ge=0, le=300, description="LTI 1.3: clock skew (seconds) allowed on an id_token's exp, iat and nbf."
    )
    jwks_timeout: float = Field(
        5.0,
        gt=0,
        le=60,
        description="LTI 1.3: seconds (overall: connect, TLS, headers, body) to fetch a platform's key set.",
    )
    jwks_max_bytes: int = Field(
        64 * 1024, ge=1024, description="LTI 1.3: largest key set nbhosting reads from a platform (bytes)."
    )
    jwks_cache_ttl: int = Field(
        3600, ge=0, description="LTI 1.3: seconds a platform's key set is used before it is fetched again."
    )
    jwks_refetch_interval: float = Field(
        10.0,
        ge=0,
        description="LTI 1.3: a token signed with a key nbhosting does not know makes it fetch the key set again "
        "(the platform rotated its keys), at most once per this many seconds per platform.",
    )

    # --- a term unattended: culling (see nbhosting_core.culling)
    idle_timeout: float = Field(
        2 * 3600,
        gt=0,
        description="Seconds with no request through Caddy and no kernel activity after which a "
        "server is stopped (the student's files stay; the next click starts it again).",
    )
    max_age: float = Field(
        24 * 3600, gt=0, description="Servers older than this are restarted at their next idle moment."
    )
    max_age_idle: float = Field(
        10 * 60, gt=0, description="Seconds of quiet that count as an idle moment for restarting an old server."
    )
    cull_interval: float = Field(60, gt=0, description="Seconds between two passes of the culler.")
    metrics_token_file: Path | None = Field(
        None,
        description="A file holding the token Prometheus presents to /metrics (``Authorization: Bearer <token>``, "
        "at least 16 characters; read again at each scrape, so it can be replaced). None: /metrics answers 401 to "
        "every request, unless the app is given another guard.",
    )
    activity_flush: float = Field(
        30,
        gt=0,
        description="Seconds between two records of one server's proxied activity (per app process): "
        "activity is kept in memory and written to RUN_DIR/activity at most that often.",
    )
    kernel_idle_timeout: int = Field(
        3600,
        ge=0,
        description="Jupyter's own culling, inside each server: kernels idle this long are shut down (0: never).",
    )

    # --- staff, events and statistics (see nbhosting_core.db, nbhosting_core.events)
    database_url: str | None = Field(
        None,
        description="The app's database (staff, tokens, sessions, events): an SQLAlchemy URL; default SQLite at "
        "DATA_ROOT/db/nbhosting.sqlite.",
    )
    sample_interval: float = Field(
        300, ge=0, description="Seconds between two samples of the host's figures in the events (0: none)."
    )
    events_keep_days: int = Field(
        30,
        ge=0,
        description="Days the host's journal of events keeps its files (the app's database keeps the events; "
        "0: forever).",
    )
    events_ingest_interval: float = Field(
        60, gt=0, description="Seconds between two readings of the host's journal into the app's database."
    )

    # --- courses from git (see nbhosting_core.courses)
    course_pull_interval: float = Field(
        0,
        ge=0,
        description="Seconds between two automatic pulls of every active course that has a remote, run by the "
        "privileged helper (0: never; the original nbhosting pulled every 300).",
    )

    # --- images (see nbhosting_core.system.courseimages)
    image_prune_interval: float = Field(
        3600,
        ge=0,
        description="Seconds between two automatic prunes of the image versions no server uses, run by the "
        "privileged helper (0: never; `nbh image prune` still does it by hand).",
    )
    image_prune_grace: float = Field(
        86400,
        ge=0,
        description="Seconds an image version stays after it was published or a server last started on it, "
        "before the automatic prune may take it (another nbhosting sharing the images folder may use it).",
    )

    # --- limits: what one student may use (see nbhosting_core.system.cgroups)
    memory_limit: int = Field(
        2 * 1024**3, ge=64 * 1024**2, description="Bytes of memory per server (Jupyter, kernels, and their /tmp)."
    )
    pids_limit: int = Field(512, ge=16, description="Processes (and threads) per server.")
    cpu_shares: int = Field(
        1024,
        ge=2,
        le=262144,
        description="Relative CPU weight of a server under "
        "contention (fair shares: every server gets the same by default).",
    )
    cpu_limit: float | None = Field(None, gt=0, description="Hard CPU cap per server, in cores (default none).")
    students_memory_fraction: float = Field(
        0.85,
        gt=0,
        le=1,
        description="All students' servers together may use this fraction of the host's "
        "memory: the host keeps the rest.",
    )
    students_pids_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="All students' servers together may hold this fraction of the host's pid_max "
        "(processes and threads): the host keeps the rest, whatever the number of servers.",
    )
    cgroup_parent: str = Field(
        "nbhosting",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="The cgroup, in each controller, that holds every server's group and caps all students "
        "together; one per installation on a host.",
    )
    log_size_max: int = Field(1024**2, ge=4096, description="Bytes of a server's container log kept on disk.")
    socket_dir_size: int = Field(
        256 * 1024,
        ge=4096,
        description="Bytes a student may write into the folder that holds their Jupyter socket (its own small tmpfs).",
    )
    workspace_quota: int = Field(
        2 * 1024**3,
        ge=16 * 1024**2,
        description="Bytes of files a student may keep in their workspaces (all courses together).",
    )
    quota_mode: Literal["auto", "loop", "measured", "off"] = Field(
        "auto",
        description="How the workspace quota holds: 'loop' (a hard cap: each student's files on their own "
        "loop-mounted ext4 image), 'measured' (usage is measured; a student over quota is stopped and told), "
        "'off', or 'auto' (loop where the host can mount loop devices, else measured).",
    )

    # --- abuse at the door: what launches may make (see nbhosting_core.throttle)
    creation_platform_burst: int = Field(
        300,
        ge=1,
        description="Launches that create something (an account, a new or replaced container) one platform may "
        "send at once, before its sustained rate applies: a few lectures starting in the same minute.",
    )
    creation_platform_per_minute: float = Field(
        60, gt=0, description="Sustained rate of launches that create something, per platform (per minute)."
    )
    creation_client_burst: int = Field(
        200,
        ge=1,
        description="Launches that create something one client address (an IPv6 /64) may send at once: a "
        "lecture hall behind one NAT'd address opening its first notebook together.",
    )
    creation_client_per_minute: float = Field(
        2, gt=0, description="Sustained rate of launches that create something, per client address (per minute)."
    )
    max_running: int | None = Field(
        None,
        ge=1,
        description="Servers that may run at once; beyond, launches that would start one are told to come back "
        "(503). Default: students_memory_fraction of the host's memory / server_memory_estimate.",
    )
    server_memory_estimate: int = Field(
        160 * 1024**2,
        ge=16 * 1024**2,
        description="What a running server typically uses (measured with bench.bench_memory: ~49 MiB never used, "
        "~76 MiB idle after a UI, ~113 MiB with a kernel), to size the default max_running.",
    )
    busy_retry_after: int = Field(
        30, ge=1, description="Seconds a launch refused at the cap of running servers is told to wait (Retry-After)."
    )

    @model_validator(mode="after")
    def _origins(self) -> Settings:
        if self.origin_mode == "subdomain" and self.servers_domain is None and not _is_hostname(self.site_address):
            raise ValueError(
                f"origin_mode 'subdomain' needs servers_domain: site_address {self.site_address!r} is not a host name"
            )
        if self.servers_tls == "files" and not (self.servers_tls_cert and self.servers_tls_key):
            raise ValueError("servers_tls 'files' needs servers_tls_cert and servers_tls_key")
        if self.frame_ancestors is not None and not is_local_host(self.site_address):
            broad = sorted(set(self.frame_ancestors.split()) & BROAD_SOURCES)
            if broad:
                raise ValueError(
                    f"frame_ancestors may not hold {' '.join(broad)} off localhost: any site could frame the "
                    "notebooks; name the platforms' origins (or leave it unset: they come from the platforms file)"
                )
        return self

    @field_validator("url_prefix")
    @classmethod
    def _slug_prefix(cls, value: str) -> str:
        if not value.isascii() or not value.replace("-", "").isalnum() or not value.islower():
            raise ValueError("url_prefix must be a lower-case slug such as 'nb'")
        return value

    @property
    def effective_servers_domain(self) -> str:
        """The domain of the servers' hosts (origin mode 'subdomain'): ``servers_domain``, or nb.<site_address>."""
        return self.servers_domain or f"nb.{self.site_address.lower()}"

    @property
    def courses_dir(self) -> Path:
        """One folder per course: DATA_ROOT/courses/<course>/."""
        return self.data_root / "courses"

    @property
    def course_meta_dir(self) -> Path:
        """nbhosting's metadata of each course (remote, branch, state, last pull): DATA_ROOT/course-meta, root's."""
        return self.data_root / "course-meta"

    @property
    def events_dir(self) -> Path:
        """The host's journal of events (root's, read by the app): DATA_ROOT/events."""
        return self.data_root / "events"

    @property
    def db_dir(self) -> Path:
        """The app's database folder (default SQLite database): DATA_ROOT/db."""
        return self.data_root / "db"

    @property
    def effective_database_url(self) -> str:
        """``database_url``, or SQLite in :attr:`db_dir`."""
        return self.database_url or f"sqlite:///{self.db_dir / 'nbhosting.sqlite'}"

    @property
    def opened_dir(self) -> Path:
        """Which notebooks each student opened, per course (the app's, for course pages): DATA_ROOT/opened."""
        return self.data_root / "opened"

    @property
    def students_dir(self) -> Path:
        """Student homes: DATA_ROOT/students/<user>/<course>/."""
        return self.data_root / "students"

    @property
    def effective_images_dir(self) -> Path:
        """Where root filesystems are built and cached."""
        return self.images_dir or self.data_root / "images"

    @property
    def effective_platforms_file(self) -> Path:
        """The platforms file: ``platforms_file``, or DATA_ROOT/platforms.toml."""
        return self.platforms_file or self.data_root / "platforms.toml"

    @property
    def secret_file(self) -> Path:
        """The server's signing secret (cookies, Jupyter tokens); created on first use, mode 0600."""
        return self.data_root / "secret"

    @property
    def lti_dir(self) -> Path:
        """DATA_ROOT/lti/: the tool's LTI 1.3 key (tool-key.pem, 0600) and the nonces already seen (nonces/)."""
        return self.data_root / "lti"

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

    @property
    def throttle_dir(self) -> Path:
        """RUN_DIR/throttle/: the door's counters (rate limits, claims on the cap), shared by every app process."""
        return self.run_dir / "throttle"

    @property
    def tickets_dir(self) -> Path:
        """RUN_DIR/tickets: the one-time tickets spent lately (see nbhosting_core.system.spent)."""
        return self.run_dir / "tickets"

    @property
    def metrics_dir(self) -> Path:
        """RUN_DIR/metrics: the app workers' request counts (prometheus_client's multiprocess files), emptied
        at each start of the app."""
        return self.run_dir / "metrics"

    @property
    def activity_dir(self) -> Path:
        """RUN_DIR/activity/<key>: the mtime is the last request proxied to that server."""
        return self.run_dir / "activity"

    @property
    def servers_dir(self) -> Path:
        """DATA_ROOT/servers/<name>.json: every server that exists (a mirror of the engine's labels)."""
        return self.data_root / "servers"

    @property
    def trust_dir(self) -> Path:
        """DATA_ROOT/trust/<name>: the course copies root vouched for to a server (root's; see
        :mod:`nbhosting_core.system.vouched`)."""
        return self.data_root / "trust"

    @property
    def running_dir(self) -> Path:
        """RUN_DIR/servers/<name>.json: the processes of every server started since boot."""
        return self.run_dir / "servers"

    @property
    def helper_socket(self) -> Path:
        """RUN_DIR/helper/helper.sock: the privileged helper's socket (root's, group the app's: 0660 in 0750)."""
        return self.run_dir / "helper" / "helper.sock"

    @property
    def podman_dir(self) -> Path:
        """DATA_ROOT/podman/<user>/: each student's rootless podman storage and configuration (not their home)."""
        return self.data_root / "podman"

    @property
    def quota_dir(self) -> Path:
        """DATA_ROOT/quota/<user>.ext4: each student's workspace image, in quota mode 'loop'."""
        return self.data_root / "quota"
