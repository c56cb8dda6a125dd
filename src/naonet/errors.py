"""Errors that the command line reports as one line and exit status 2."""


class UserError(ValueError):
    """Bad input from the user (an architecture, a path, a flag, a file).

    The message names the problem and the fix in one line; the CLI prints it
    without a traceback and exits with status 2.
    """
