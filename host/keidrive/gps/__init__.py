"""Where the car is: GNSS routes, NMEA, state boundaries and the kei road rules.

- ``boundaries``: the US state outlines (and Japan's) simplified into the
  firmware's generated module ``keifw/geo_us.py`` (``keidrive geo compile``),
  and read back from it for maps and tests;
- ``rules``: the kei / mini-truck road rules per jurisdiction (``rules.toml``,
  each row with its source) compiled into ``keifw/kei_rules.py``;
- ``route``: a GPX or CSV route with a drive's speed trace laid along it;
- ``nmea``: the sentences a GNSS module sends for those positions, with its
  noise, outages and jumps, as UART records beside the CAN frames;
- ``report``: the jurisdiction changes of a drive, printed and plotted.
"""
