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


class UnsupportedType(ProtocolError):
    """A BIM-bots request's Input-Type or Output-Type the service does not take or give."""


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


class JobFailure(NotifydError):
    """A job's attempt failed; ``permanent`` says whether another attempt could succeed."""

    permanent = False


class TransientError(JobFailure):
    """The attempt failed for a reason that may pass: try again later."""


class PermanentError(JobFailure):
    """The attempt failed for a reason that another attempt cannot fix."""

    permanent = True


class BimServerUnavailable(TransientError):
    """BIMserver could not be reached, timed out, or answered with a server error."""


class BimServerDown(BimServerUnavailable):
    """BIMserver did not answer at all (refused, unreachable, 5xx, 429 or a proxy's page).

    Its jobs wait for it without spending attempts (up to ``outage_patience_seconds``)."""


class BimServerError(JobFailure):
    """BIMserver answered with an exception; its message is kept verbatim.

    What it means for the job (``permanent``, ``refuses_access``, ``not_found``) is decided by
    the caller from BIMserver's fault table (``notifyd.protocol.bimserver.faults``)."""

    def __init__(
        self,
        message: str,
        *,
        exception_type: str = "UserException",
        call: str = "",
        permanent: bool = True,
        refuses_access: bool = False,
        not_found: bool = False,
    ):
        super().__init__(f"BIMserver {exception_type} in {call}: {message}" if call else message)
        self.bimserver_message = message
        self.exception_type = exception_type
        self.call = call
        self.permanent = permanent
        self.refuses_access = refuses_access
        self.not_found = not_found


class ServiceFailed(PermanentError):
    """The service could not analyse the model."""


class InvalidModel(ServiceFailed):
    """The model is not valid input for the service (raised by service code)."""


class ServiceTimeout(PermanentError):
    """The service ran longer than its timeout."""


class ServiceCrashed(TransientError):
    """The process running the service died (killed, out of memory, or a crash in C code)."""


class JobCancelled(NotifydError):
    """The job was cancelled while it ran."""


class Retry(TransientError):
    """Raised by service code to ask for another attempt, after ``delay`` seconds if given."""

    def __init__(
        self, message: str = "the service asked to be retried", delay: float | None = None
    ):
        super().__init__(message)
        self.delay = delay
