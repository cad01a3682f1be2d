"""The entry point the ASGI server loads: ``services.learning.main:app``."""

from services.common.logs import configure_logging
from services.learning.app import create_app

configure_logging("learning")
app = create_app()
