"""A BIMserver for tests and plugin authors, built from BIMserver's source.

``state`` (what it holds), ``api`` (dispatch as JsonHandler does), ``methods`` (one function
per API method), ``servlets`` (/json, /download,
/upload, /stream), ``faults`` (injected failures), ``notifier`` (calls to services), ``server``
(all of it on a port). It reads the protocol tables in ``notifyd.protocol.bimserver`` that the
client reads too; ``docs/bimserver-conformance.md`` lists each behaviour with its source line.
"""

from notifyd.emulator.faults import Fault, FaultKind
from notifyd.emulator.server import BimServerEmulator
from notifyd.emulator.state import EmulatedRevision, Grant, RegisteredService

__all__ = [
    "BimServerEmulator",
    "EmulatedRevision",
    "Fault",
    "FaultKind",
    "Grant",
    "RegisteredService",
]
