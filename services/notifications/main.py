"""The entry point the ASGI server loads: ``services.notifications.main:app``."""

from services.common.logs import configure_logging
from services.notifications.app import create_app

configure_logging("notifications")
app = create_app()
