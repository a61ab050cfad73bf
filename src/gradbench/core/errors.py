"""Exceptions that carry a message meant for the user."""


class InputError(ValueError):
    """Bad input from the user: an unknown name, an invalid value, an unusable path.

    The message names the bad value and the valid choices; the CLI prints it as one line and
    exits with status 2.
    """
