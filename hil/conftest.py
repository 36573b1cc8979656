"""The HIL suite runs on keidrive's own plugin (``hil/plugin.py``, registered
through the ``pytest11`` entry point): the fixtures users get for their own
scenarios."""
