"""The errors the tool raises, and the exit codes they end with.

Every failure the user can cause or meet reaches them as one line (what, where, how to fix)
and one of these exit codes; tracebacks are for bugs only.
"""

# Exit codes, documented in the README.
EXIT_OK = 0
EXIT_FAILED = 1  # something broke; production was left as it was before the step that failed
EXIT_REFUSED = 2  # a guard refused to start (bad input, config, host key, lock...); nothing changed
EXIT_ROLLED_BACK = 3  # the release failed after the switch and was rolled back
EXIT_INTERRUPTED = 130  # Ctrl-C


class DeployError(Exception):
    """A failure explained in one line. `exit_code` tells the shell what kind it was."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))  # one line, whatever the caller built


class Refused(DeployError):
    """A guard said no before anything on the host changed."""

    exit_code = EXIT_REFUSED


class ConfigError(Refused):
    """The tool's own configuration is missing, misspelled or malformed."""


class HostKeyError(Refused):
    """The host's SSH key is unknown or differs from the one on record."""


class RolledBack(DeployError):
    """The release failed after switching and production was put back on the previous one."""

    exit_code = EXIT_ROLLED_BACK
