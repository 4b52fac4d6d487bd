"""The BIMserver adapter the worker uses: ``client`` (calls, errors, dialect), ``download``,
``writeback`` (extended data, check-in) and ``progress``. Built on the protocol tables in
``notifyd.protocol.bimserver``, which the emulator shares."""
