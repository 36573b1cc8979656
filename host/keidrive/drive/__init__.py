"""A drive with the firmware in the loop: the firmware's process and the bus
it listens on (``harness``), the pace frames go out at (``pacing``), any
python-can bus (``busio``), the OBD-II lockstep against the simulated engine
ECU (``obdloop``) and a drive in another DBC's format (``byodbc``)."""
