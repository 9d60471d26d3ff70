"""Running a check's untrusted side in a process of its own, with limits."""
