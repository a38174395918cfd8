"""The course platforms nbhosting trusts, from one TOML file: who may send students in, how, and from where.

::

    # DATA_ROOT/platforms.toml
    [[platform]]
    name = "edx"                                  # a slug: student ids are scoped by it ("edx:<id>")
    origins = ["https://courses.example.org"]     # may frame notebooks; launches and iframes come from there
    courses = ["python101", "data-*"]             # which courses it may launch (shell-style patterns)
    methods = ["signed", "lti11", "lti13"]        # and "legacy" (unsigned launches: see below)
    secret = "…at least 32 characters…"           # signs its launch URLs (method "signed")

    [platform.lti11]                              # method "lti11"
    consumer_key = "nbhosting"
    shared_secret = "…"

    [platform.lti13]                              # method "lti13"
    issuer = "https://courses.example.org"
    client_id = "…"
    deployment_ids = ["1"]
    auth_login_url = "https://courses.example.org/api/lti_consumer/v1/launch/"
    jwks_url = "https://courses.example.org/api/lti_consumer/v1/public_keysets/…"

A file that does not validate is refused with the line and the reason (:class:`~nbhosting_core.errors.InvalidConfig`).
"legacy" (launch URLs with a bare student id, as deployed course XBlocks send) may be on for one platform at most,
and only requests coming from its origins are let through: it is a weaker door, and ``nbh doctor`` says so.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import urllib.parse
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from .errors import InvalidConfig
from .naming import COURSE_RE
from .tomlmodels import parse_toml_model

Method = Literal["signed", "legacy", "lti11", "lti13"]
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
COURSE_PATTERN_RE = re.compile(r"^[A-Za-z0-9_.*?\[\]-]{1,64}$")
MIN_SECRET = 32
log = logging.getLogger(__name__)


def origin_of(url: str) -> str | None:
    """The origin (``scheme://host[:port]``, lower-case, default port dropped) of ``url``, or None (pure)."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return None
    default = {"https": 443, "http": 80}[parts.scheme]
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Lti11(_Strict):
    """LTI 1.1 (OAuth 1.0a HMAC-SHA1 signed form POST): what the platform signs with."""

    consumer_key: str = Field(min_length=1, max_length=255, description="The key the platform sends.")
    shared_secret: SecretStr = Field(description="The secret both sides sign with (at least 16 characters).")

    @field_validator("shared_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("the LTI 1.1 shared secret must have at least 16 characters")
        return value


class Lti13(_Strict):
    """LTI 1.3 (OIDC login, then an id_token the platform signs with a key of its JWKS)."""

    issuer: str = Field(min_length=1, description="The platform's issuer (the id_token's iss).")
    client_ids: list[str] = Field(
        min_length=1,
        description="nbhosting's client ids at the platform (an id_token's aud must be one of them): Open edX gives "
        'each LTI 1.3 component its own, unless they share a reusable configuration. `client_id = "…"` also works.',
    )

    @model_validator(mode="before")
    @classmethod
    def _one_or_several(cls, data: object) -> object:
        if isinstance(data, dict) and "client_id" in data:
            data = dict(data)
            value = data.pop("client_id")
            data["client_ids"] = [*data.get("client_ids", []), *(value if isinstance(value, list) else [value])]
        return data

    deployment_ids: list[str] = Field(min_length=1, description="Deployments of nbhosting the platform may use.")
    auth_login_url: str = Field(description="Where the OIDC login continues at the platform.")
    jwks_url: str = Field(description="The platform's public keys (JSON Web Key Set), fetched and cached.")

    @field_validator("auth_login_url", "jwks_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urllib.parse.urlsplit(value)
        local = parts.hostname in ("localhost", "127.0.0.1", "::1")
        if parts.scheme != "https" and not (parts.scheme == "http" and local):
            raise ValueError("must be an https:// URL (http:// only for a platform on this host)")
        return value


class Platform(_Strict):
    """One platform: its name, origins, courses, launch methods and credentials."""

    name: str = Field(description="A slug (lower-case letters, digits, '-'): scopes its students' ids.")
    origins: list[str] = Field(default_factory=list, description="Origins its pages (and iframes) come from.")
    courses: list[str] = Field(min_length=1, description="Courses it may launch: names or shell patterns.")
    methods: list[Method] = Field(min_length=1, description="signed, legacy, lti11, lti13.")
    secret: SecretStr | None = Field(None, description="Signs its launch URLs (method signed).")
    lti11: Lti11 | None = None
    lti13: Lti13 | None = None

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("a platform name is 1 to 32 lower-case letters, digits or '-', starting with a letter")
        return value

    @field_validator("secret")
    @classmethod
    def _strong(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET:
            raise ValueError(f"the secret must have at least {MIN_SECRET} characters")
        return value

    @field_validator("origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        cleaned = []
        for value in values:
            origin = origin_of(value)
            if origin is None or origin != value.rstrip("/").lower():
                raise ValueError(f"{value!r} is not an origin (scheme://host[:port], nothing after)")
            cleaned.append(origin)
        return cleaned

    @field_validator("courses")
    @classmethod
    def _courses(cls, values: list[str]) -> list[str]:
        for value in values:
            if not COURSE_PATTERN_RE.match(value):
                raise ValueError(f"{value!r} is not a course name or pattern")
        return values

    @model_validator(mode="after")
    def _credentials(self) -> Platform:
        methods = set(self.methods)
        if "signed" in methods and self.secret is None:
            raise ValueError("method 'signed' needs a secret")
        if "lti11" in methods and self.lti11 is None:
            raise ValueError("method 'lti11' needs a [platform.lti11] table")
        if "lti13" in methods and self.lti13 is None:
            raise ValueError("method 'lti13' needs a [platform.lti13] table")
        if "legacy" in methods and not self.origins:
            raise ValueError("method 'legacy' needs the platform's origins (only they may send unsigned launches)")
        return self

    def may_launch(self, course: str) -> bool:
        """True if this platform may send students into ``course``."""
        return COURSE_RE.match(course) is not None and any(fnmatch.fnmatchcase(course, p) for p in self.courses)

    def student(self, platform_student_id: str) -> str:
        """nbhosting's student id for the platform's: scoped by the platform (``edx:4f8a…``)."""
        return f"{self.name}:{platform_student_id}"

    def uses(self, method: Method) -> bool:
        """True if this platform may launch by ``method``."""
        return method in self.methods


class Platforms(_Strict):
    """Every platform nbhosting trusts (none: no launch from outside at all)."""

    platform: list[Platform] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Platforms:
        names = [p.name for p in self.platform]
        if len(set(names)) != len(names):
            raise ValueError("two platforms have the same name")
        keys = [p.lti11.consumer_key for p in self.platform if p.lti11 is not None]
        if len(set(keys)) != len(keys):
            raise ValueError("two platforms have the same LTI 1.1 consumer key")
        clients = [(p.lti13.issuer, c) for p in self.platform if p.lti13 is not None for c in p.lti13.client_ids]
        if len(set(clients)) != len(clients):
            raise ValueError("two platforms have the same LTI 1.3 issuer and client id")
        if sum(p.uses("legacy") for p in self.platform) > 1:
            raise ValueError("method 'legacy' may be on for one platform at most")
        return self

    def get(self, name: str) -> Platform | None:
        """The platform called ``name``, or None."""
        return next((p for p in self.platform if p.name == name), None)

    def by_consumer_key(self, key: str) -> Platform | None:
        """The LTI 1.1 platform whose consumer key is ``key``, or None."""
        return next((p for p in self.platform if p.lti11 is not None and p.lti11.consumer_key == key), None)

    def by_client(self, issuer: str, client_id: str) -> Platform | None:
        """The LTI 1.3 platform of (``issuer``, ``client_id``), or None."""
        return next(
            (
                p
                for p in self.platform
                if p.lti13 is not None and p.lti13.issuer == issuer and client_id in p.lti13.client_ids
            ),
            None,
        )

    def legacy(self) -> Platform | None:
        """The platform that may send unsigned launches, if any."""
        return next((p for p in self.platform if p.uses("legacy")), None)

    def origins(self) -> list[str]:
        """Every platform's origins (who may frame notebooks), sorted."""
        return sorted({o for p in self.platform for o in p.origins})


def load_platforms(path: Path) -> Platforms:
    """The platforms of the TOML file at ``path`` (no file: no platform).

    Raises:
        InvalidConfig: the file is not valid TOML, or a value is refused; says which line and why.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Platforms()
    except PermissionError as exc:
        raise InvalidConfig(
            f"{path} cannot be read by uid {os.geteuid()}: it must be readable by the app's group "
            "(`nbh platforms`, as root, checks it and gives it that group, mode 0640)",
            log_detail=str(exc),
        ) from exc
    return parse_platforms(text, source=str(path))


def parse_platforms(text: str, *, source: str = "platforms.toml") -> Platforms:
    """The platforms of a TOML text (pure).

    Raises:
        InvalidConfig: as :func:`load_platforms`.
    """
    return parse_toml_model(text, Platforms, source=source, line_of=_line_of, what="platform")


def _line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """The line (1-based) of the value at ``loc`` (("platform", 2, "lti11", "shared_secret")) in a TOML text."""
    if len(loc) < 2 or loc[0] != "platform" or not isinstance(loc[1], int):
        return None
    index, keys = loc[1], [str(k) for k in loc[2:] if isinstance(k, str)]
    lines = text.splitlines()
    starts = [n for n, line in enumerate(lines) if line.strip() == "[[platform]]"]
    if index >= len(starts):
        return None
    end = starts[index + 1] if index + 1 < len(starts) else len(lines)
    table, best = "", starts[index]
    for n in range(starts[index], end):
        stripped = lines[n].strip()
        if stripped.startswith("[platform.") and stripped.endswith("]"):
            table = stripped[len("[platform.") : -1]
            if keys and keys[0] == table:
                best = n
            continue
        key = stripped.split("=", 1)[0].strip() if "=" in stripped else ""
        wanted = keys[1] if keys and keys[0] == table and len(keys) > 1 else (keys[0] if keys and not table else "")
        if key and key == wanted:
            return n + 1
    return best + 1


class PlatformsFile:
    """The platforms of a file, read again whenever it changes (an admin edits it; no restart needed).

    A file that stops validating keeps the last good platforms in service, and the error is logged and raised by
    :meth:`check` (what ``nbh doctor`` shows); with no good reading at all, nothing is trusted.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._platforms = Platforms()
        self._error: InvalidConfig | None = None

    def current(self) -> Platforms:
        """The platforms in service now (re-read if the file changed since)."""
        try:
            info = self.path.stat()
            stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
        except FileNotFoundError:
            stamp = (0, 0, 0)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._platforms, self._error = load_platforms(self.path), None
            except InvalidConfig as exc:
                self._error = exc
                log.error("platforms: %s; the last good platforms stay in service", exc.message)
        return self._platforms

    def check(self) -> Platforms:
        """The platforms, read now.

        Raises:
            InvalidConfig: the file is refused (line and reason).
        """
        self._stamp = None
        platforms = self.current()
        if self._error is not None:
            raise self._error
        return platforms
