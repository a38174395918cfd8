"""An app on the in-memory backend for a real uvicorn process (``--factory tests.server.metrics_app:app``):
the multiprocess test runs two of them on one metrics folder. Its data under ``NBH_DATA_ROOT``."""

from starlette.applications import Starlette

from nbhosting_core import FakeAccounts, FakeBackend, Hub, Settings
from nbhosting_server import create_app


def app() -> Starlette:
    settings = Settings()
    return create_app(hub=Hub(settings, backend=FakeBackend(), accounts=FakeAccounts(settings.students_dir)))
