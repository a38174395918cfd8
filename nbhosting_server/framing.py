"""Who may frame nbhosting's own pages: the app's responses carry CSP ``frame-ancestors``.

Course platforms embed launches in iframes, so the progress and error pages must let them; the value comes from
:func:`nbhosting_core.origins.frame_ancestors` (the platforms' origins, read again when the platforms file
changes), never ``*`` by default. Notebook servers set their own (Jupyter's policy, see
:func:`nbhosting_core.containers.jupyter_csp`).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class FrameAncestors:
    """ASGI middleware: a ``Content-Security-Policy: frame-ancestors ...`` on every response that has no policy.

    Args:
        app: the app to wrap.
        sources: the sources of frame-ancestors now (called for each response).
    """

    def __init__(self, app: ASGIApp, sources: Callable[[], str]) -> None:
        self.app = app
        self.sources = sources

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "content-security-policy" not in headers:
                    headers.append("Content-Security-Policy", f"frame-ancestors {self.sources()}")
            await send(message)

        await self.app(scope, receive, send_with_policy)
