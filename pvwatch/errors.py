"""One small error hierarchy: every failure pvwatch reports names the record, the field and what was expected."""


class PvwatchError(Exception):
    """Base of every error pvwatch raises on purpose."""


class InvalidEvent(PvwatchError):
    """A message that is not a valid pvwatch event; `reason` is a short machine-readable category."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ConfigError(PvwatchError):
    """Configuration missing or inconsistent; raised at start-up, never mid-stream."""


class BrokerError(PvwatchError):
    """The Kafka broker could not be started or reached."""
