"""The one exception type for user mistakes: the CLI prints its message on one line and exits 1."""


class GenaugError(Exception):
    """A bad input or an unusable file, described in one line: what was given and what was expected."""
