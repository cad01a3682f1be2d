"""The entry point the ASGI server loads: ``services.programs.main:app``."""

from services.common.logs import configure_logging
from services.programs.app import create_app

configure_logging("programs")
app = create_app()
