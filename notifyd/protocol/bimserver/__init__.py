"""BIMserver's JSON API, read from its source: the one home of that knowledge.

``api`` (methods per dialect), ``sobjects`` (objects as JsonConverter writes them),
``converter`` (how BIMserver reads parameters), ``faults`` (what an exception means),
``envelope`` (request and answer bodies), ``catalogue`` (stock plugins). The client in
``notifyd.bimserver`` and the emulator in ``notifyd.emulator`` both read these. No I/O here.
"""
