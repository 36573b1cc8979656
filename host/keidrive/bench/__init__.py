"""``keidrive bench``: figures measured on this machine, one module per area.

Speed targets live here as ratios to a reference measured in the same run,
never as timed assertions in the tests.
"""
