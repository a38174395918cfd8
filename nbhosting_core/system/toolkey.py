"""nbhosting's own key as an LTI 1.3 tool: an RSA key pair made once, kept private, published as a JWKS.

A platform asks for the tool's public keys when it registers the tool (Open edX: "Tool Public Key Mode: Keyset
URL"); nbhosting signs nothing with it yet (no LTI Advantage services), but a platform needs the URL to accept
the tool. The private key is ``DATA_ROOT/lti/tool-key.pem`` (PKCS#8 PEM, mode 0600, made atomically by the
first process that needs it; the others read that one); its key id is its RFC 7638 thumbprint, so it changes
only with the key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from ..errors import NbhostingError
from .secretfile import load_or_create_secret

KEY_BITS = 2048


def new_private_key_pem() -> bytes:
    """A new RSA private key (2048 bits, e=65537) as unencrypted PKCS#8 PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 thumbprint of an RSA JWK (SHA-256 of its required members, in order), base64url (pure)."""
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


class ToolKey:
    """The tool's key pair, read (or made) on first use, then kept in memory."""

    def __init__(self, path: Path, *, owners: frozenset[int] | None = None) -> None:
        self.path = path
        self._owners = owners  # who may own the file (default: this process's user)
        self._lock = threading.Lock()
        self._private: rsa.RSAPrivateKey | None = None

    def private_key(self) -> rsa.RSAPrivateKey:
        """The private key (made and stored on first use).

        Raises:
            NbhostingError: the key file is not safe to use (see :func:`load_or_create_secret`) or is not an RSA
                private key.
        """
        with self._lock:
            if self._private is None:
                pem = load_or_create_secret(self.path, new_private_key_pem, owners=self._owners)
                try:
                    key = serialization.load_pem_private_key(pem, password=None)
                except ValueError as exc:
                    raise NbhostingError(
                        "nbhosting's LTI key is not usable.", log_detail=f"{self.path}: not a PEM private key"
                    ) from exc
                if not isinstance(key, rsa.RSAPrivateKey):
                    raise NbhostingError(
                        "nbhosting's LTI key is not usable.", log_detail=f"{self.path}: not an RSA key"
                    )
                self._private = key
            return self._private

    def jwks(self) -> dict[str, Any]:
        """The public JSON Web Key Set platforms fetch: ``{"keys": [{kty, n, e, kid, alg: RS256, use: sig}]}``."""
        public = RSAAlgorithm.to_jwk(self.private_key().public_key(), as_dict=True)
        assert isinstance(public, dict)
        jwk = {"kty": "RSA", "n": public["n"], "e": public["e"]}
        return {"keys": [{**jwk, "kid": thumbprint(jwk), "alg": "RS256", "use": "sig"}]}
