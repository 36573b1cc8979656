"""keidrive firmware.

``compat`` comes first: on CPython it stands in for the ``micropython``
module the other modules import.
"""

from . import compat  # noqa: F401
