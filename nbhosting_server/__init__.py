"""nbhosting_server: the Starlette app (launch routes, Caddy's forward-auth check) and the `nbh` CLI."""

from .app import create_app

__all__ = ["create_app"]
