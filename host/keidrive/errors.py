"""The one exception type for a user's mistake.

The command line prints its message as a single line and exits non-zero;
anything else that escapes is a bug and keeps its traceback.
"""


class KeidriveError(Exception):
    """A user-facing error: bad DBC, bad CSV, wrong port, bad config..."""
