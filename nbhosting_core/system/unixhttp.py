"""A tiny HTTP client over a Unix socket: how nbhosting asks a Jupyter server whether it is up."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over an AF_UNIX socket (Host header ``localhost``)."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def get_status(path: Path, url: str, headers: dict[str, str], timeout: float = 2.0) -> int | None:
    """GET ``url`` on the socket at ``path``: the HTTP status, or None if nothing answers there."""
    conn = UnixHTTPConnection(path, timeout=timeout)
    try:
        conn.request("GET", url, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
