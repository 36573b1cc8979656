"""Dev boards: the virtual board, talking to a board's REPL, deploying the firmware."""

# Overall deadlines (seconds) of a board session (board.client.Board): reading
# or changing the config is a few round trips; a flash uploads ~150 kB of
# application at 115200 baud.
CONFIG_DEADLINE_S = 30.0
FLASH_DEADLINE_S = 300.0

