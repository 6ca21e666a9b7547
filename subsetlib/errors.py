"""The one exception type for mistakes a user can fix."""


class UserError(ValueError):
    """Bad input with a one-line message that names the fix.

    The CLI prints it as a single line on stderr and exits with status 2; the Python API raises it as is.
    """
