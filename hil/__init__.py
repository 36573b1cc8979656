"""Hardware-in-the-loop: a pytest plugin and suite that put the keidrive
firmware on a (virtual or real) CAN bus and check what it reports."""
