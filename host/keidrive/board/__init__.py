"""Dev boards: the virtual board, talking to a board's REPL, deploying the firmware."""

# Overall deadlines (seconds) of a board session (board.client.Board): reading
# or changing the config is a few round trips; a flash uploads ~150 kB of
# application at 115200 baud.
CONFIG_DEADLINE_S = 30.0
FLASH_DEADLINE_S = 300.0


def add_deadline_option(parser, default: float) -> None:
    parser.add_argument(
        "--deadline", type=float, default=default, metavar="SECONDS",
        help=f"give up on the board after this long in all, with one line saying so (default {default:g})",
    )
