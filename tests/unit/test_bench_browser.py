"""The browser benchmark's pure parts: certificate pins, network conditions, the report's ratios and verdicts."""

from __future__ import annotations

import base64
import datetime
import hashlib
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.browser import LOOPBACK, SLOW, median, spki_sha256
from bench.report import Row, ratio, render, verdict


def self_signed() -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench.localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER), key


def test_spki_pin_is_the_base64_sha256_of_the_certificates_public_key_info() -> None:
    der, key = self_signed()
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert spki_sha256(der) == base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_spki_pin_matches_chromiums_documented_openssl_recipe() -> None:
    der, _ = self_signed()
    pubkey = subprocess.run(["openssl", "x509", "-inform", "der", "-pubkey", "-noout"], input=der, capture_output=True)
    spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pubkey.stdout, capture_output=True)
    assert spki_sha256(der) == base64.b64encode(hashlib.sha256(spki.stdout).digest()).decode()


def test_loopback_is_not_throttled_and_the_slow_link_is_20_mbit_each_way_with_40_ms() -> None:
    assert LOOPBACK.cdp() is None
    assert SLOW.cdp() == {
        "offline": False,
        "latency": 40.0,
        "downloadThroughput": 2_500_000.0,
        "uploadThroughput": 2_500_000.0,
    }


def test_median_of_nothing_is_none() -> None:
    assert median([]) is None
    assert median([3.0, 1.0, 2.0]) == 2.0


def test_ratio_is_ours_over_the_peers_and_na_when_either_is_missing() -> None:
    assert ratio(1.0, 4.0) == "0.25x"
    assert ratio(None, 4.0) == ratio(1.0, None) == ratio(1.0, 0.0) == "n/a"


def test_verdict_says_ok_at_or_under_the_target_and_miss_above() -> None:
    assert verdict(2.0, 2.0) == "<= 2: OK"
    assert verdict(2.1, 2.0) == "<= 2: MISS"
    assert verdict(None, 2.0) == "<= 2: not measured"
    assert verdict(5.0, None) == ""


def test_render_prints_both_figures_the_runs_counted_the_ratio_and_the_verdict() -> None:
    table = render([Row("click to first output", 1.5, 3.0, "s", 2.0, 3, 3)], "ours", "peer")
    assert table.splitlines()[-1] == "| click to first output | 1.50 s (3) | 3.00 s (3) | 0.50x | <= 2: OK |"
    assert "not measured" in render([Row("x", None, 1.0, "MiB")], "ours", "peer")


def test_a_count_of_runs_is_printed_out_of_the_runs_with_no_ratio() -> None:
    table = render([Row("first run lost", 2.0, 1.0, "", 0.0, 3, 2, out_of=True)], "ours", "peer")
    assert table.splitlines()[-1] == "| first run lost | 2 of 3 | 1 of 2 |  | <= 0: MISS |"
