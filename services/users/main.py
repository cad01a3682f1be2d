"""The entry point the ASGI server loads: ``services.users.main:app``."""

from services.common.logs import configure_logging
from services.users.app import create_app

configure_logging("users")
app = create_app()
