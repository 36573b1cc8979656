"""The one exception type for a user's mistake.

The command line prints its message as a single line and exits non-zero;
anything else that escapes is a bug and keeps its traceback.

An error about one of a drive's settings names it in ``option`` (the
library's name, ``profile``, ``pace``): the library says the name, the
command line the flag (``--profile``), so each reads in its own terms.
"""

import difflib


class KeidriveError(Exception):
    """A user-facing error: bad DBC, bad CSV, wrong port, bad config...

    ``option``: the setting the message is about, named before it;
    ``mentions``: other settings it names, written ``{name}`` in it."""

    def __init__(self, message: str, option: str | None = None, mentions: tuple[str, ...] = ()):
        super().__init__(message)
        self.option = option
        self.mentions = mentions

    def __str__(self) -> str:
        return self.said(lambda name: name)

    def said(self, name_of) -> str:
        """The message with the settings it names said by ``name_of`` (the
        command line passes one that says ``min_explained`` as ``--min-explained``)."""
        message = self.args[0] if self.args else ""
        for name in self.mentions:
            message = message.replace("{" + name + "}", name_of(name))
        if not self.option:
            return message
        return name_of(self.option) + ("" if message.startswith(":") else " ") + message


def did_you_mean(word: str, choices) -> str:
    """``; did you mean X?`` for the closest of ``choices`` to a mistyped
    ``word``, or nothing when none is close."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""
