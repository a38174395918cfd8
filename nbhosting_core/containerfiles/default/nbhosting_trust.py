# nbhosting: notebooks copied from the course open as trusted for their student (nbhosting_core/trust.py).
#
# Before each start, nbhosting writes into the server's configuration folder (root's, read-only here): the
# course's notary secret, and the signatures with it of the course's notebooks as nbhosting copies them. While the
# server runs, root adds the signature of every course version it copies in (a first copy of a notebook a pull
# brought, a reset), replacing the file whole (a rename): the list is read again whenever the file changed. A copy
# still as the course made it is trusted; the student's own saves are signed by Jupyter into their store, kept in
# the workspace (not in /tmp: trust survives a restart). Without those files (an older nbhosting, or this image run
# elsewhere), Jupyter's defaults stay.
import contextlib
import os

from nbformat.sign import SignatureStore, SQLiteSignatureStore

NBHOSTING_CONFIG = "/nbhosting/run/config"
NBHOSTING_SECRET = os.path.join(NBHOSTING_CONFIG, "notary-secret")
NBHOSTING_TRUSTED = os.path.join(NBHOSTING_CONFIG, "trusted-digests")
NBHOSTING_DATA = "/home/student/.local/share/jupyter"
# at most this much of the list is read (root writes at most as much: nbhosting_core.trust.MAX_DIGESTS_BYTES)
NBHOSTING_TRUSTED_MAX = 2 * 2**20


def _identity(info):
    return (info.st_ino, info.st_size, info.st_mtime_ns)


class NbhostingCourseCopies(SignatureStore):
    """The student's own signatures, plus the course's notebooks as nbhosting copied them (read-only)."""

    def __init__(self):
        self._own = SQLiteSignatureStore(os.path.join(NBHOSTING_DATA, "nbsignatures.db"))
        self._course = set()
        self._read = None  # the identity of the list last read (None: never read, or absent)

    def _course_signatures(self):
        """The course's list, read again when root replaced it (a stat per check: ~5 us)."""
        try:
            current = _identity(os.stat(NBHOSTING_TRUSTED))
        except OSError:
            self._course, self._read = set(), None
            return self._course
        if current != self._read:
            try:
                with open(NBHOSTING_TRUSTED, "rb") as lines:
                    identity = _identity(os.fstat(lines.fileno()))  # what was read, whatever replaced it since
                    text = lines.read(NBHOSTING_TRUSTED_MAX).decode("ascii", "replace")
            except OSError:
                return self._course
            self._course = {tuple(line.split()) for line in text.splitlines() if line.strip()}
            self._read = identity
        return self._course

    def store_signature(self, digest, algorithm):
        self._own.store_signature(digest, algorithm)

    def remove_signature(self, digest, algorithm):
        self._own.remove_signature(digest, algorithm)

    def check_signature(self, digest, algorithm):
        return (algorithm, digest) in self._course_signatures() or self._own.check_signature(digest, algorithm)

    def close(self):
        self._own.close()


if os.path.isfile(NBHOSTING_SECRET):
    # no workspace here (this image run elsewhere): nbformat's store falls back to memory by itself
    with contextlib.suppress(OSError):
        os.makedirs(NBHOSTING_DATA, exist_ok=True)
    c.NotebookNotary.secret_file = NBHOSTING_SECRET  # noqa: F821 - `c` is the config object Jupyter provides
    c.NotebookNotary.data_dir = NBHOSTING_DATA  # noqa: F821
    c.NotebookNotary.store_factory = NbhostingCourseCopies  # noqa: F821
