"""The gateway process: ``uvicorn services.gateway.main:app`` (see settings.py)."""

from __future__ import annotations

from services.common.logs import configure_logging
from services.gateway.app import Gateway
from services.gateway.settings import Settings

configure_logging("gateway")
app = Gateway(Settings.from_env())
