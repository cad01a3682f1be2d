"""Bring a whole backend up on loopback and test it from the outside.

The harness reads a declarative topology (which components exist, how each
runs, what it depends on, how to tell it is ready), starts it with a backend,
and hands the endpoints to a pytest run or a shell.
"""

from harness.endpoints import Endpoint, Endpoints
from harness.errors import ComponentStartError, ConfigError, HarnessError
from harness.topology import Component, Probe, Topology

__all__ = [
    "Component",
    "ComponentStartError",
    "ConfigError",
    "Endpoint",
    "Endpoints",
    "HarnessError",
    "Probe",
    "Topology",
]
