"""The notifications service's own exceptions; problem responses are
services.common.api's."""

from __future__ import annotations

from services.common.errors import ConfigError, DatabaseError, ServiceError

__all__ = [
    "ConfigError",
    "DatabaseError",
    "DeliveryFailure",
    "MissingData",
    "NotificationsError",
    "PermanentFailure",
    "TransientFailure",
    "UncertainDelivery",
    "UnknownTemplate",
]


class NotificationsError(ServiceError):
    """Base of every error the notifications service raises on purpose."""


class UnknownTemplate(NotificationsError):
    """No template has this name; the message lists the known ones."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"there is no template {name!r}; the templates are {', '.join(known)}"
        )
        self.name = name


class MissingData(NotificationsError):
    """A template needs data fields that were not given, or not as text."""

    def __init__(self, template: str, problems: dict[str, str]) -> None:
        listed = "; ".join(f"{field} {why}" for field, why in problems.items())
        super().__init__(f"the {template} template cannot be rendered: {listed}")
        self.template = template
        self.problems = problems


class DeliveryFailure(NotificationsError):
    """An attempt to hand a message to the SMTP server failed; see the subclasses."""


class TransientFailure(DeliveryFailure):
    """Worth another attempt later: no connection, a timeout, a 4xx reply."""


class PermanentFailure(DeliveryFailure):
    """Another attempt would fail the same way: a 5xx reply, an unusable message."""


class UncertainDelivery(DeliveryFailure):
    """The whole message went to the server but its answer never came (a timeout,
    a dropped connection): it may have been delivered, so it is not sent again."""
