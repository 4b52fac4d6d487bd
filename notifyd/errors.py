"""The notifyd error tree.

Every error carries facts as fields and a message fit to show the caller; the web
middleware and the CLI are the only places that turn them into HTTP answers or exit codes.
"""

from __future__ import annotations


class NotifydError(Exception):
    """notifyd failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(NotifydError):
    """The configuration is invalid."""


class StartupError(NotifydError):
    """notifyd could not start."""


class ProtocolError(NotifydError):
    """The request is not valid for the BIMserver protocol.

    Sent to BIMserver as a ``UserException`` whose message names what is at fault.
    """


class UnknownService(ProtocolError):
    """No service is declared with that identifier."""

    def __init__(self, identifier: str) -> None:
        super().__init__(f"No service found with identifier '{identifier}'")
        self.identifier = identifier


class UnknownProfile(ProtocolError):
    """The service has no profile with that identifier."""

    def __init__(self, service: str, profile: str) -> None:
        super().__init__(f"Service '{service}' has no profile with identifier '{profile}'")
        self.service = service
        self.profile = profile


class Forbidden(ProtocolError):
    """The caller may not use this endpoint."""


class StorageError(NotifydError):
    """The job store could not complete the operation."""


class JobNotFound(StorageError):
    """No job has that id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"No job with id {job_id}")
        self.job_id = job_id


class InvalidTransition(StorageError):
    """The job is not in a state that allows this operation."""
