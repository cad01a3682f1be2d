"""The learning service: courses and their lessons, enrollments, certificates."""
