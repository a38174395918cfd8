"""The tool's LTI 1.3 key: made once, private to root, published as a public JWKS with a stable key id."""

import os
import stat

import jwt
import pytest

from nbhosting_core import NbhostingError
from nbhosting_core.system.toolkey import ToolKey, thumbprint


def test_the_key_is_made_once_0600_and_every_process_reads_the_same(tmp_path):
    path = tmp_path / "lti" / "tool-key.pem"
    first = ToolKey(path).jwks()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert ToolKey(path).jwks() == first  # another process: the same key, the same kid


def test_the_published_set_is_public_rs256_with_the_keys_thumbprint_as_id(tmp_path):
    key = ToolKey(tmp_path / "tool-key.pem")
    (jwk,) = key.jwks()["keys"]
    assert set(jwk) == {"kty", "n", "e", "kid", "alg", "use"}  # no private member ("d", "p", "q", ...)
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")
    assert jwk["kid"] == thumbprint(jwk)
    token = jwt.encode({"iss": "nbhosting"}, key.private_key(), algorithm="RS256", headers={"kid": jwk["kid"]})
    assert jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"]) == {"iss": "nbhosting"}


def test_the_rfc7638_thumbprint_of_its_example_key():
    # RFC 7638, section 3.1
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV"
        "4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdA"
        "ZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kE"
        "gU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_a_key_file_others_may_read_is_refused(tmp_path):
    path = tmp_path / "tool-key.pem"
    ToolKey(path).jwks()
    os.chmod(path, 0o644)
    with pytest.raises(NbhostingError) as error:
        ToolKey(path).jwks()
    assert "not safe" in error.value.message


def test_a_file_that_is_not_a_key_is_refused(tmp_path):
    path = tmp_path / "tool-key.pem"
    path.write_bytes(b"x" * 64)
    os.chmod(path, 0o600)
    with pytest.raises(NbhostingError) as error:
        ToolKey(path).private_key()
    assert "not usable" in error.value.message
