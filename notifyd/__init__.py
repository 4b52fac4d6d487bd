"""notifyd: receive BIMserver service notifications, queue them durably, run BIM analyses.

The plugin API: declare a ``ServiceSpec`` whose ``handler`` takes a ``ServiceContext`` and
returns ``ExtendedData`` or a ``Revision``; raise ``InvalidModel`` for a model the service
cannot accept and ``Retry`` to be tried again later.
"""

from notifyd.errors import InvalidModel, Retry
from notifyd.protocol.descriptors import STrigger
from notifyd.services import ExtendedData, Revision, ServiceContext, ServiceSpec

__version__ = "0.1.0"

__all__ = [
    "ExtendedData",
    "InvalidModel",
    "Retry",
    "Revision",
    "STrigger",
    "ServiceContext",
    "ServiceSpec",
]
