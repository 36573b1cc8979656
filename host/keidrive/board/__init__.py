"""Dev boards: the virtual board, talking to a board's REPL, deploying the firmware."""
