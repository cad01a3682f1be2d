"""One module per revision of the ``users`` schema, applied in order."""
