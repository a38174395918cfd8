"""One-time tickets: made for one server and one student, short-lived, good once across processes."""

import multiprocessing

import pytest

from nbhosting_core import LaunchRefused
from nbhosting_core.system.spent import GRACE, SpentNonces
from nbhosting_core.tickets import TICKET_TTL, make_ticket, read_ticket

SECRET = b"s" * 32
KEY = "a" * 40
NONCE = "n" * 24


def test_a_ticket_names_its_server_its_student_and_when_it_expires():
    ticket = read_ticket(SECRET, make_ticket(SECRET, KEY, "nbh-abc", now=1000, nonce=NONCE), now=1000)
    assert (ticket.key, ticket.user, ticket.expires, ticket.nonce) == (KEY, "nbh-abc", 1000 + TICKET_TTL, NONCE)


def test_tickets_are_unique():
    assert len({make_ticket(SECRET, KEY, "nbh-abc", now=1000) for _ in range(50)}) == 50


def test_a_ticket_lives_a_minute():
    text = make_ticket(SECRET, KEY, "nbh-abc", now=1000)
    assert read_ticket(SECRET, text, now=1000 + TICKET_TTL).key == KEY
    with pytest.raises(LaunchRefused) as refused:
        read_ticket(SECRET, text, now=1001 + TICKET_TTL)
    assert refused.value.why == "ticket-expired"


def test_a_forged_or_altered_ticket_is_refused():
    text = make_ticket(SECRET, KEY, "nbh-abc", now=1000, nonce=NONCE)
    key, user, expires, nonce, mac = text.split(".")
    for forged in (
        f"{'b' * 40}.{user}.{expires}.{nonce}.{mac}",  # another server
        f"{key}.nbh-xyz.{expires}.{nonce}.{mac}",  # another student
        f"{key}.{user}.{int(expires) + 3600}.{nonce}.{mac}",  # longer-lived
        f"{key}.{user}.{expires}.{'m' * 24}.{mac}",  # another nonce
        make_ticket(b"t" * 32, KEY, "nbh-abc", now=1000, nonce=NONCE),  # another secret
    ):
        with pytest.raises(LaunchRefused) as refused:
            read_ticket(SECRET, forged, now=1000)
        assert refused.value.why == "ticket-forged"


@pytest.mark.parametrize("text", ["", "x", "a.b.c.d.e", f"{KEY}.nbh-abc.99.{NONCE}.é", "." * 4, "t" * 300])
def test_anything_else_is_not_a_ticket(text):
    with pytest.raises(LaunchRefused) as refused:
        read_ticket(SECRET, text, now=0)
    assert refused.value.why == "ticket-malformed"


def test_the_refusal_says_nothing_of_the_ticket():
    text = make_ticket(SECRET, KEY, "nbh-abc", now=1000, nonce=NONCE)
    with pytest.raises(LaunchRefused) as refused:
        read_ticket(SECRET, text, now=5000)
    assert NONCE not in str(refused.value) and text.rsplit(".", 1)[1] not in str(refused.value)


# ------------------------------------------------------------------------------------------ spent once


def test_a_nonce_is_spent_once(tmp_path):
    spent = SpentNonces(tmp_path / "tickets")
    assert spent.spend(NONCE, 1060, now=1000)
    assert not spent.spend(NONCE, 1060, now=1001)
    assert SpentNonces(tmp_path / "tickets").spend("m" * 24, 1060, now=1001)  # another nonce, another process


def test_spent_nonces_are_forgotten_well_after_their_tickets_expire(tmp_path):
    spent = SpentNonces(tmp_path / "tickets")
    spent.spend(NONCE, 1060, now=1000)
    spent.spend("m" * 24, 1060 + GRACE, now=1000 + GRACE)
    assert len(list((tmp_path / "tickets").iterdir())) == 2  # still remembered: a replay would be refused
    spent.spend("o" * 24, 2000, now=1061 + GRACE)  # the first one's ticket expired GRACE seconds ago
    assert sorted(p.name[-24:] for p in (tmp_path / "tickets").iterdir()) == ["m" * 24, "o" * 24]


def _spend(args):
    folder, nonce = args
    return SpentNonces(folder).spend(nonce, 10**10, now=0)


def test_of_many_processes_spending_the_same_nonce_exactly_one_does(tmp_path):
    context = multiprocessing.get_context("fork")
    with context.Pool(8) as pool:
        results = pool.map(_spend, [(tmp_path / "tickets", NONCE)] * 64)
    assert results.count(True) == 1


def test_a_nonce_that_is_not_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a nonce"):
        SpentNonces(tmp_path).spend("../../etc/passwd", 1, now=0)
