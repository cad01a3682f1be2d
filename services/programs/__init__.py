"""The programs service: learning programs, who is assigned to them, and progress."""
