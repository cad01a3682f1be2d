"""One module per revision of the ``programs`` schema, applied in order."""
