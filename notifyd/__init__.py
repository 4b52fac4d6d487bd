"""notifyd: receive BIMserver service notifications, queue them durably, run BIM analyses."""

__version__ = "0.1.0"
