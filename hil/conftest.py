"""The HIL suite runs on keidrive's own plugin (``hil/plugin.py``, installed
as ``keidrive_hil`` and registered through the ``pytest11`` entry point): the
fixtures users get for their own scenarios."""
