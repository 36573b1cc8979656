"""Logs and records: drive logs read as python-can reads them, cut logs
included (``drivelog``), and the 24-byte frame record the hub, its clients
and the firmware's stream port share (``record``)."""
