"""The HIL suite's pytest configuration.

The plugin (bus, device-under-test and drive fixtures) lives in
``hil/plugin.py`` once the firmware-in-the-loop harness exists; the suite's
tests sit beside this file.
"""
