"""LTI 1.3 launches: OpenID Connect third-party login initiation, then an id_token verified with PyJWT.

1. **Login** (:func:`login_redirect`): the platform sends the browser to nbhosting's login URL with ``iss``,
   ``login_hint``, ``target_link_uri`` (and ``client_id``, ``lti_deployment_id``, ``lti_message_hint``). nbhosting
   finds the platform, makes a nonce and a **state**, and sends the browser back to the platform's
   ``auth_login_url`` (``response_type=id_token``, ``scope=openid``, ``response_mode=form_post``, ``prompt=none``,
   ``redirect_uri`` = nbhosting's launch URL).
2. **Launch** (:func:`verify_lti13`): the platform posts ``id_token`` and ``state`` to the launch URL. nbhosting
   checks the state, then the token: RS256 signature by a key of the platform's JWKS (fetched by key id, fetched
   again when the id is unknown: key rotation), issuer, audience (its client id; ``azp`` when several),
   expiry and issue time (``leeway`` seconds of skew), the nonce (the state's, accepted once across processes),
   the deployment id, the message type ``LtiResourceLinkRequest`` and the version ``1.3.0``.

**The state is signed, not stored.** It is ``<platform>.<issued>.<nonce>.<HMAC>`` made with nbhosting's secret,
valid ``state_ttl`` seconds. A state cookie would bind the launch to the browser that began the login, but a
course page embeds nbhosting in an iframe, where browsers now block third-party cookies, and the launch would fail
for every student there. What the choice means: the state proves the login began at nbhosting (for that
platform, with that nonce) a few minutes ago, not that it began in *this* browser. Someone who lets a platform
sign a launch for themselves and, instead of using it, makes another person's browser post it, could put that
person in their own notebook (a "login CSRF"); they would have to do it within ``state_ttl``, once (the nonce is
spent by the first post), and would only get that person to work in the sender's own notebook, not to read theirs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from jwt import PyJWK

from .errors import InvalidInput, LaunchRefused
from .lti import MISCONFIGURED, NOT_VERIFIED, LtiLaunch, Nonces, launch_for
from .platforms import Platform, Platforms, origin_of

log = logging.getLogger(__name__)

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
MESSAGE_TYPE = "LtiResourceLinkRequest"
VERSION = "1.3.0"
ALGORITHM = "RS256"
MAX_TOKEN = 32 * 1024


class KeyFinder(Protocol):
    """Where the platforms' public keys come from (:class:`nbhosting_core.system.jwks.KeySets`)."""

    def key(self, url: str, kid: str | None) -> PyJWK:
        """The key ``kid`` of the key set at ``url``; raises PlatformUnavailable or LaunchRefused (unknown-key)."""
        ...


# ------------------------------------------------------------------------------------------------- the state


@dataclass(frozen=True)
class State:
    """What nbhosting's signed state says: which platform's login, when, and the nonce it asked for."""

    platform: str
    issued: int
    nonce: str


def make_state(secret: bytes, platform: str, nonce: str, issued: int) -> str:
    """The signed state of a login (pure); ``nonce`` is URL-safe base64 (no dots)."""
    return f"{platform}.{issued}.{nonce}.{_state_digest(secret, platform, issued, nonce)}"


def read_state(secret: bytes, state: str, *, now: float, ttl: float) -> State:
    """The login a state was made for, if nbhosting signed it less than ``ttl`` seconds ago (pure).

    Raises:
        LaunchRefused: ``why`` state-malformed, state-forged or state-expired.
    """
    parts = state.split(".")
    if len(parts) != 4 or not parts[1].isascii() or not parts[1].isdigit() or len(parts[1]) > 12:
        raise LaunchRefused(NOT_VERIFIED, why="state-malformed", log_detail="the state is not one nbhosting makes")
    platform, issued_text, nonce, digest = parts
    issued = int(issued_text)
    expected = _state_digest(secret, platform, issued, nonce)
    if not hmac.compare_digest(expected.encode(), digest.encode("utf-8", "replace")):
        raise LaunchRefused(NOT_VERIFIED, why="state-forged", log_detail="the state's signature does not match")
    if not -60 <= now - issued <= ttl:
        raise LaunchRefused(
            "This launch took too long. Open the notebook again from your course page.",
            why="state-expired",
            log_detail=f"{platform}: login began {now - issued:.0f} s ago (at most {ttl:g} s)",
        )
    return State(platform=platform, issued=issued, nonce=nonce)


def _state_digest(secret: bytes, platform: str, issued: int, nonce: str) -> str:
    message = "\0".join(["nbhosting-lti13-state-v1", platform, str(issued), nonce]).encode()
    return base64.urlsafe_b64encode(hmac.new(secret, message, hashlib.sha256).digest()).rstrip(b"=").decode()


# ------------------------------------------------------------------------------------------------- the login


@dataclass(frozen=True)
class LoginRedirect:
    """Where a login continues (the platform's authorisation URL with nbhosting's request), and for whom."""

    url: str
    platform: str


def platform_of(platforms: Platforms, issuer: str, client_id: str | None) -> Platform | None:
    """The LTI 1.3 platform of (``issuer``, ``client_id``); without a client id, the issuer's only one (pure)."""
    if client_id:
        return platforms.by_client(issuer, client_id)
    found = [p for p in platforms.platform if p.lti13 is not None and p.lti13.issuer == issuer]
    return found[0] if len(found) == 1 else None


def login_redirect(
    platforms: Platforms,
    params: Mapping[str, str],
    *,
    secret: bytes,
    redirect_uri: str,
    now: float,
    nonce: str | None = None,
) -> LoginRedirect:
    """Answer a platform's third-party login initiation: where the browser goes next (pure but for the nonce).

    Args:
        params: the login request's parameters (query or form).
        redirect_uri: nbhosting's launch URL (public), where the platform posts the id_token.
        nonce: the nonce to ask for (default: 192 random bits).

    Raises:
        InvalidInput: ``iss``, ``login_hint`` or ``target_link_uri`` is missing.
        LaunchRefused: ``why`` unknown-platform, method, deployment or target.
    """
    missing = [name for name in ("iss", "login_hint", "target_link_uri") if not params.get(name)]
    if missing:
        raise InvalidInput(NOT_VERIFIED, log_detail=f"LTI 1.3 login without {', '.join(missing)}")
    issuer, client_id = params["iss"], params.get("client_id")
    platform = platform_of(platforms, issuer, client_id)
    shown = f"issuer {issuer[:100]!r}, client id {(client_id or '')[:100]!r}"
    if platform is None or platform.lti13 is None:
        raise LaunchRefused(MISCONFIGURED, why="unknown-platform", log_detail=f"no LTI 1.3 platform for {shown}")
    if not platform.uses("lti13"):
        raise LaunchRefused(MISCONFIGURED, why="method", log_detail=f"{platform.name} may not launch by LTI 1.3")
    deployment = params.get("lti_deployment_id")
    if deployment and deployment not in platform.lti13.deployment_ids:
        raise LaunchRefused(
            MISCONFIGURED, why="deployment", log_detail=f"{platform.name}: unknown deployment id {deployment[:60]!r}"
        )
    if origin_of(params["target_link_uri"]) != origin_of(redirect_uri):
        raise LaunchRefused(
            MISCONFIGURED,
            why="target",
            log_detail=f"{platform.name}: target_link_uri {params['target_link_uri'][:200]!r} is not on this site",
        )
    nonce = nonce or secrets.token_urlsafe(24)
    query = {
        "scope": "openid",
        "response_type": "id_token",
        "response_mode": "form_post",
        "prompt": "none",
        "client_id": client_id or platform.lti13.client_ids[0],  # the one the platform named: it is ours
        "redirect_uri": redirect_uri,
        "login_hint": params["login_hint"],
        "state": make_state(secret, platform.name, nonce, int(now)),
        "nonce": nonce,
    }
    if params.get("lti_message_hint"):
        query["lti_message_hint"] = params["lti_message_hint"]
    base = urllib.parse.urlsplit(platform.lti13.auth_login_url)
    merged = urllib.parse.parse_qsl(base.query, keep_blank_values=True) + list(query.items())
    return LoginRedirect(url=base._replace(query=urllib.parse.urlencode(merged)).geturl(), platform=platform.name)


# ------------------------------------------------------------------------------------------------ the launch


def check_claims(platform: Platform, claims: Mapping[str, Any], *, nonce: str, now: float, leeway: float) -> None:
    """The checks of an id_token's claims beyond its signature, issuer and audience (pure).

    Raises:
        LaunchRefused: ``why`` one of azp, expired, not-yet-valid, nonce, deployment, message-type, version,
            resource-link.
    """
    assert platform.lti13 is not None
    name, client_ids = platform.name, platform.lti13.client_ids
    audience = claims.get("aud")
    several = isinstance(audience, list) and len(audience) > 1
    if (several or "azp" in claims) and claims.get("azp") not in client_ids:
        raise LaunchRefused(NOT_VERIFIED, why="azp", log_detail=f"{name}: azp is not nbhosting's client id")
    if not isinstance(claims.get("exp"), int | float) or now > claims["exp"] + leeway:
        raise LaunchRefused(
            "This launch has expired. Open the notebook again from your course page.",
            why="expired",
            log_detail=f"{name}: id_token exp {claims.get('exp')!r}, now {now:.0f}",
        )
    for stamp in ("iat", "nbf"):
        value = claims.get(stamp)
        if (stamp == "iat" or value is not None) and (not isinstance(value, int | float) or value > now + leeway):
            raise LaunchRefused(
                NOT_VERIFIED,
                why="not-yet-valid",
                log_detail=f"{name}: id_token {stamp} {value!r} is after now {now:.0f} (+{leeway:g} s): clocks?",
            )
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"].encode(), nonce.encode()):
        raise LaunchRefused(NOT_VERIFIED, why="nonce", log_detail=f"{name}: not the nonce of this login")
    deployment = claims.get(CLAIM + "deployment_id")
    if deployment not in platform.lti13.deployment_ids:
        raise LaunchRefused(
            MISCONFIGURED, why="deployment", log_detail=f"{name}: deployment id {str(deployment)[:60]!r} not allowed"
        )
    if claims.get(CLAIM + "message_type") != MESSAGE_TYPE:
        raise LaunchRefused(
            MISCONFIGURED,
            why="message-type",
            log_detail=f"{name}: message type {str(claims.get(CLAIM + 'message_type'))[:60]!r}, not {MESSAGE_TYPE}",
        )
    if claims.get(CLAIM + "version") != VERSION:
        raise LaunchRefused(
            NOT_VERIFIED, why="version", log_detail=f"{name}: LTI version {str(claims.get(CLAIM + 'version'))[:20]!r}"
        )
    link = claims.get(CLAIM + "resource_link")
    if not isinstance(link, dict) or not link.get("id"):
        raise LaunchRefused(NOT_VERIFIED, why="resource-link", log_detail=f"{name}: no resource_link id")


def verify_lti13(
    form: Mapping[str, str],
    platforms: Platforms,
    *,
    secret: bytes,
    keys: KeyFinder,
    nonces: Nonces,
    now: float,
    state_ttl: float,
    leeway: float,
) -> LtiLaunch:
    """Verify an LTI 1.3 launch (the platform's form post of ``id_token`` and ``state``): who and what it names.

    Raises:
        InvalidInput: (400) no id_token or state, or the token lacks its user, course or notebook.
        LaunchRefused: (403) a state, token or claim that does not pass (``why`` says which), a replay (replayed),
            the platform's own refusal (platform-error).
        PlatformUnavailable: (502) the platform's key set cannot be fetched.
    """
    if form.get("error"):  # the platform refused to sign a launch (e.g. login_required)
        code = form["error"][:60] if form["error"].isprintable() else "(unprintable)"
        raise LaunchRefused(
            "Your course platform did not let this launch through. Open the notebook again from your course page.",
            why="platform-error",
            log_detail=f"the platform answered error {code!r}",
        )
    token, state_text = form.get("id_token", ""), form.get("state", "")
    if not token or not state_text or len(token) > MAX_TOKEN:
        raise InvalidInput(NOT_VERIFIED, log_detail="LTI 1.3 launch without id_token and state (or too large)")
    state = read_state(secret, state_text, now=now, ttl=state_ttl)
    platform = platforms.get(state.platform)
    if platform is None or platform.lti13 is None or not platform.uses("lti13"):
        raise LaunchRefused(MISCONFIGURED, why="method", log_detail=f"{state.platform} may not launch by LTI 1.3")
    name, settings = platform.name, platform.lti13
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise LaunchRefused(NOT_VERIFIED, why="malformed", log_detail=f"{name}: id_token is not a JWT") from exc
    if header.get("alg") != ALGORITHM:
        raise LaunchRefused(
            NOT_VERIFIED, why="algorithm", log_detail=f"{name}: id_token alg {str(header.get('alg'))[:20]!r}"
        )
    kid = header.get("kid")
    key = keys.key(settings.jwks_url, kid if isinstance(kid, str) else None)
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[ALGORITHM],
            audience=settings.client_ids,  # any of nbhosting's client ids at this platform
            issuer=settings.issuer,
            # exp, iat and nbf are checked by check_claims, on nbhosting's clock
            options={
                "require": ["iss", "aud", "exp", "iat", "nonce"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidSignatureError as exc:
        raise LaunchRefused(
            NOT_VERIFIED, why="bad-signature", log_detail=f"{name}: id_token signature does not verify"
        ) from exc
    except jwt.InvalidAudienceError as exc:
        raise LaunchRefused(
            NOT_VERIFIED, why="audience", log_detail=f"{name}: id_token audience is not nbhosting's client id"
        ) from exc
    except jwt.InvalidIssuerError as exc:
        raise LaunchRefused(
            NOT_VERIFIED, why="issuer", log_detail=f"{name}: id_token issuer is not the platform's"
        ) from exc
    except jwt.PyJWTError as exc:
        raise LaunchRefused(NOT_VERIFIED, why="malformed", log_detail=f"{name}: id_token refused: {exc}") from exc
    check_claims(platform, claims, nonce=state.nonce, now=now, leeway=leeway)
    if not nonces.claim(f"lti13:{name}", state.issued, state.nonce):
        raise LaunchRefused(NOT_VERIFIED, why="replayed", log_detail=f"{name}: this launch was already used")
    custom = claims.get(CLAIM + "custom")
    custom = custom if isinstance(custom, dict) else {}
    return launch_for(platform, "lti13", claims.get("sub"), custom, claims.get(CLAIM + "target_link_uri"))
