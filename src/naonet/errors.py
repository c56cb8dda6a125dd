"""Errors that the command line reports as one line and exit status 2."""


class UserError(ValueError):
    """Bad input from the user (an architecture, a path, a flag, a file).

    The message names the problem and the fix in one line; the CLI prints it
    without a traceback and exits with status 2.
    """


def error_in_brief(error: BaseException, limit: int = 200) -> str:
    """An exception from code naonet does not own (a plugin, a space of one's own) in a
    few words: its type and the first line of its message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0][:limit]}" if lines else type(error).__name__
