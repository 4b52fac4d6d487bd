"""What a BIMserver exception means for a job: one table, read from BIMserver's source.

BIMserver answers a failed call with ``{"exception": {"__type": <simple class name>, "message":
…}}`` (``JsonHandler.handleThrowable``). The table matches the type and the start of the
message as BIMserver builds it and says what a further attempt can change. The client raises
with the verdict and the emulator raises the same types and messages, so both read one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    TRANSIENT = "transient"  # another attempt may succeed: the server's state will change
    PERMANENT = "permanent"  # the call is wrong or its object is gone: no attempt will change it
    REFUSED = "refused"  # the token or its rights do not allow this; permanent for this job
    NOT_FOUND = "not_found"  # a lookup found nothing: the caller may try another way


@dataclass(frozen=True, slots=True)
class Rule:
    exception_type: str | None  # None: any type
    message_start: str  # "" matches every message
    verdict: Verdict
    source: str


# First match wins; more specific rules come first.
RULES: tuple[Rule, ...] = (
    # Tokens. [1.5] AuthenticationException extends UserException and is passed on as it is;
    # [1.4] it is wrapped as UserException(e) whose message is the same.
    Rule("AuthenticationException", "", Verdict.REFUSED, "[1.5] Authorization.java:166-228"),
    Rule("InvalidTokenException", "", Verdict.REFUSED, "[1.5] PublicInterfaceFactory.java:116"),
    Rule(None, "This token has expired", Verdict.REFUSED, "Authorization.fromToken"),
    Rule(None, "Invalid token", Verdict.REFUSED, "Authorization.fromToken"),
    Rule(None, "Given token is corrupt", Verdict.REFUSED, "Authorization.fromToken"),
    Rule(None, "Unknown authorization type", Verdict.REFUSED, "Authorization.fromToken"),
    Rule(None, "No user found with uoid", Verdict.REFUSED, "PublicInterfaceFactory.get"),
    Rule(None, "User has been deleted", Verdict.REFUSED, "PublicInterfaceFactory.get"),
    Rule(
        None,
        "Authentication required for this call",
        Verdict.REFUSED,
        "GenericServiceImpl.requireAuthentication",
    ),
    Rule(
        None,
        "Real authentication required",
        Verdict.REFUSED,
        "GenericServiceImpl.requireRealUserAuthentication",
    ),
    Rule(
        None,
        "Anonymous has no rights",
        Verdict.REFUSED,
        "GenericServiceImpl.requireRealUserAuthentication",
    ),
    Rule(
        None,
        "Administrator rights required",
        Verdict.REFUSED,
        "GenericServiceImpl.requireAdminAuthentication",
    ),
    Rule(
        None,
        "Authenticated user required",
        Verdict.REFUSED,
        "GetProjectByPoidDatabaseAction.java:50",
    ),
    Rule(None, "No rights to ", Verdict.REFUSED, "ExplicitRightsAuthorization.can*"),
    Rule(None, "User has no rights on", Verdict.REFUSED, "GetRevisionDatabaseAction.java:52"),
    Rule(None, "User '", Verdict.REFUSED, "GetProjectByPoidDatabaseAction.java:58"),
    # Lookups that throw where a caller might expect null.
    Rule(
        None,
        "No SerializerPluginConfiguration found where",
        Verdict.NOT_FOUND,
        "AbstractGetByFieldDatabaseAction.java:46",
    ),
    Rule(
        None,
        "No ExtendedDataSchema found where",
        Verdict.NOT_FOUND,
        "AbstractGetByFieldDatabaseAction.java:46",
    ),
    Rule(
        None,
        "No DeserializerPluginConfiguration found where",
        Verdict.NOT_FOUND,
        "AbstractGetByFieldDatabaseAction.java:46",
    ),
    Rule(
        None,
        "No plugin found",
        Verdict.NOT_FOUND,
        "GetSerializerByPluginClassNameDatabaseAction.java",
    ),
    # Long actions that the server no longer has (restarted, cleaned up): start a new one.
    Rule(None, "No data found for topicId", Verdict.TRANSIENT, "ServiceImpl.getDownloadData"),
    Rule(
        None,
        "No topic found with topicId",
        Verdict.TRANSIENT,
        "NotificationRegistryServiceImpl.getProgress",
    ),
    Rule(
        None,
        "Call cannot be executed because the server is in",
        Verdict.TRANSIENT,
        "GenericServiceImpl.requireRunningServer",
    ),
    # Objects that are gone.
    Rule(None, "Revision does not exist", Verdict.PERMANENT, "GetRevisionDatabaseAction.java:45"),
    Rule(
        None,
        "Revision with roid",
        Verdict.PERMANENT,
        "AddExtendedDataToRevisionDatabaseAction.java:62",
    ),
    Rule(
        None,
        "No revision found with roid",
        Verdict.PERMANENT,
        "ServiceImpl.getAllExtendedDataOfRevision",
    ),
    Rule(None, "Project with oid", Verdict.PERMANENT, "GetProjectByPoidDatabaseAction.java:46"),
    Rule(
        None,
        "Project has been deleted",
        Verdict.PERMANENT,
        "GetProjectByPoidDatabaseAction.java:53",
    ),
    # The call itself is wrong (a dialect notifyd got wrong, or a bug): no retry mends it.
    Rule(None, "Missing parameter:", Verdict.PERMANENT, "JsonHandler.processSingleRequest"),
    Rule(None, "Missing 'parameters' field", Verdict.PERMANENT, "JsonHandler.processSingleRequest"),
    Rule(None, "No service found with name", Verdict.PERMANENT, "JsonHandler.processSingleRequest"),
    Rule(None, "Method ", Verdict.PERMANENT, "JsonHandler.processSingleRequest"),
    Rule("ConvertException", "", Verdict.PERMANENT, "JsonConverter.fromJson"),
    Rule("UnsupportedOperationException", "", Verdict.PERMANENT, "JsonConverter.fromJson"),
    Rule("IllegalArgumentException", "argument type mismatch", Verdict.PERMANENT, "SMethod.invoke"),
    # Everything else: a UserException is the caller's fault by BIMserver's design; a
    # ServerException or a Java runtime exception is the server's, and may pass (a stale
    # serializer oid, a lock conflict, a database error).
    Rule("UserException", "", Verdict.PERMANENT, "ServiceException subclasses"),
    Rule(None, "", Verdict.TRANSIENT, "ServerException and Java runtime exceptions"),
)


def classify(exception_type: str, message: str) -> Rule:
    """The first rule matching the exception's ``__type`` and message."""
    for rule in RULES:
        if rule.exception_type not in (None, exception_type):
            continue
        if message.startswith(rule.message_start):
            return rule
    raise AssertionError("the last rule matches everything")
