"""Mistakes a user can fix, reported as one line and exit code 2."""

import functools
import sys


class UserError(Exception):
    """A bad file, format or setting: the message names it and says what to do."""


def exits_cleanly(main):
    """Turn a UserError raised by `main` into one line on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper
