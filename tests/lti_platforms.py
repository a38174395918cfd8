"""Course platforms that launch students by LTI, as the tests' own: they sign with their own keys.

* :class:`Consumer11`: an LTI 1.1 tool consumer signing its launch forms with oauthlib's Client (as Open edX's
  LTI consumer does), HMAC-SHA1 over the URL it posts to.
* :class:`Platform13`: an LTI 1.3 platform: RSA key pairs of its own, its JWKS served by a small local HTTP
  server on a free port (which it can rotate, or make silent), id_tokens signed with PyJWT.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from oauthlib.oauth1 import SIGNATURE_TYPE_BODY, Client

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"


class Consumer11:
    """An LTI 1.1 tool consumer (an Open edX course with an LTI passport ``id:key:secret``)."""

    def __init__(self, key: str, secret: str) -> None:
        self.key, self.secret = key, secret

    def form(self, **fields: str) -> dict[str, str]:
        """The launch form Open edX's LTI consumer posts (before signing), with ``fields`` over its defaults.

        A field given as None is left out.
        """
        form = {
            "lti_message_type": "basic-lti-launch-request",
            "lti_version": "LTI-1p0",
            "resource_link_id": "courses.example.org-4b1d5a0c6e2f",
            "user_id": "a1b2c3d4e5f60718293a4b5c6d7e8f90",  # the per-course anonymous user id
            "roles": "Student",
            "context_id": "course-v1:Org+Python101+2026",
            "launch_presentation_return_url": "",
            "oauth_callback": "about:blank",
            "custom_course": "python101",
            "custom_notebook": "w1/intro.ipynb",
            "custom_component_display_name": "Notebook",
        }
        form.update(fields)
        return {k: v for k, v in form.items() if v is not None}

    def sign(
        self,
        url: str,
        form: dict[str, str],
        *,
        timestamp: float | None = None,
        nonce: str | None = None,
        method: str = "HMAC-SHA1",
        secret: str | None = None,
    ) -> str:
        """The signed form body, as a browser posts it (``application/x-www-form-urlencoded``)."""
        client = Client(
            self.key,
            client_secret=self.secret if secret is None else secret,
            signature_type=SIGNATURE_TYPE_BODY,
            signature_method=method,
            timestamp=str(int(timestamp if timestamp is not None else time.time())),
            nonce=nonce or uuid.uuid4().hex,
        )
        _, _, body = client.sign(
            url, http_method="POST", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        return str(body)


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    assert isinstance(jwk, dict)
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


class Platform13:
    """An LTI 1.3 platform (Open edX's LTI consumer, 1.3): its keys, its JWKS server, the id_tokens it signs.

    Use as a context manager: the JWKS is served on http://127.0.0.1:<free port>/jwks while it is open.
    """

    def __init__(self, issuer: str = "https://courses.example.org", client_id: str = "nbhosting-client") -> None:
        self.issuer, self.client_id = issuer, client_id
        self.keys = {"k1": new_key()}
        self.published = ["k1"]  # the key ids the JWKS serves
        self.fetches = 0
        self.silent = False  # True: accept connections and never answer
        self._server: http.server.ThreadingHTTPServer | None = None
        self._closing = threading.Event()

    # --- the JWKS server
    def __enter__(self) -> Platform13:
        platform = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                platform.fetches += 1
                if platform.silent:
                    platform._closing.wait(30)  # the client must give up long before
                    return
                body = json.dumps({"keys": [public_jwk(platform.keys[k], k) for k in platform.published]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def jwks_url(self) -> str:
        assert self._server is not None, "use the platform as a context manager"
        return f"http://127.0.0.1:{self._server.server_address[1]}/jwks"

    def rotate(self, kid: str) -> None:
        """A new key ``kid``, published alone from now on (the old one is retired)."""
        self.keys[kid] = new_key()
        self.published = [kid]

    def toml(self, name: str = "edx", courses: str = '["python101", "data-*"]', methods: str = '["lti13"]') -> str:
        """The platform's entry in nbhosting's platforms.toml (what the admin copies from Open edX)."""
        return (
            f'[[platform]]\nname = "{name}"\ncourses = {courses}\nmethods = {methods}\n'
            f'[platform.lti13]\nissuer = "{self.issuer}"\nclient_id = "{self.client_id}"\n'
            f'deployment_ids = ["1"]\nauth_login_url = "{self.issuer}/api/lti_consumer/v1/launch/"\n'
            f'jwks_url = "{self.jwks_url}"\n'
        )

    # --- what the platform does
    def login_params(self, target_link_uri: str, /, **extra: str) -> dict[str, str]:
        """The third-party login initiation Open edX sends (its preflight request)."""
        return {
            "iss": self.issuer,
            "client_id": self.client_id,
            "lti_deployment_id": "1",
            "target_link_uri": target_link_uri,
            "login_hint": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
            "lti_message_hint": "launch-data-key-123",
            **extra,
        }

    def claims(self, nonce: str, target_link_uri: str, /, **changes: Any) -> dict[str, Any]:
        """An LtiResourceLinkRequest's claims (as Open edX's LTI 1.3 consumer makes them), ``changes`` applied
        (a change to None removes the claim)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "azp": self.client_id,
            "sub": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
            "iat": now,
            "exp": now + 3600,
            "nonce": nonce,
            CLAIM + "message_type": "LtiResourceLinkRequest",
            CLAIM + "version": "1.3.0",
            CLAIM + "deployment_id": "1",
            CLAIM + "target_link_uri": target_link_uri,
            CLAIM + "resource_link": {"id": "block-v1:Org+Python101+2026+type@lti_consumer+block@4b1d"},
            CLAIM + "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"],
            CLAIM + "custom": {"course": "python101", "notebook": "w1/intro.ipynb"},
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def id_token(self, claims: dict[str, Any], kid: str | None = None, key: rsa.RSAPrivateKey | None = None) -> str:
        """``claims`` signed RS256 with the key ``kid`` (default: the first published), or with ``key``."""
        kid = kid or self.published[0]
        return jwt.encode(claims, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})


def query_of(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


@contextmanager
def platform13(**kwargs: Any) -> Iterator[Platform13]:
    with Platform13(**kwargs) as platform:
        yield platform
