"""A virtual CAN bus across processes on one machine, without kernel modules.

A hub process owns a Unix domain socket per channel; every client (python-can
``interface="keidrive"``, the firmware's stream port, the simulator) connects
to it. Stream sockets make it reliable and ordered; the hub fans every frame
out to the other clients, frames pending together leave in CAN arbitration
order, and an optional bitrate paces the bus and measures its load.
"""
