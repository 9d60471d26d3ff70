"""Entry points: the ``cnn-gradcheck`` command, the pytest plugin, the self-test and grading. No checking
logic of their own: each builds a Job and hands it to checks.api."""
