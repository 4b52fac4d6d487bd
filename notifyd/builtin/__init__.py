"""The services notifyd ships, each in its own module; they import ifcopenshell only when they
run, in a worker process, so the daemon itself never loads it."""
