"""What keidrive knows about each supported dev board family."""

from dataclasses import dataclass

# sys.implementation._mpy >> 10 -> native architecture (py/persistentcode.h,
# the same table mpremote's mip uses); mpy-cross takes the name as -march.
MPY_ARCHS = (
    None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
    "xtensa", "xtensawin", "rv32imc", "rv64imc",
)


@dataclass(frozen=True)
class BoardKind:
    name: str
    chip: str                 # what the virtual board calls its chip
    platform: str             # sys.platform of MicroPython on it
    archs: tuple              # native architectures its MicroPython can report
    image: str                # base image format: "esp-bin", "uf2", "dfu"
    flash_offset: int | None  # esptool offset of the combined MicroPython .bin
    esp_chip_id: int | None   # chip id in the ESP image header's extended part
    default_can_port: str     # config can_port on this board
    can_config: tuple = ()    # (key, value) the board's CAN wiring puts in /config.json when not set
    gps_config: tuple = ()    # (key, value) its GNSS module's UART (used with gps: true)

    def defaults(self) -> dict:
        """The config keys a flash writes for this board when the board has none."""
        return {"can_port": self.default_can_port, **dict(self.can_config), **dict(self.gps_config)}


# Upstream MicroPython (v1.28) has machine.CAN on STM32, MIMXRT and Alif only,
# numbering controllers from 1; ESP32 TWAI is not merged yet. So the ESP32
# family and the RP2040 take an MCP2515 on a hardware SPI bus. Pins: each
# board's default pins for that SPI bus (MicroPython's port docs), chip select
# and INT on free GPIOs; all of them can be changed with `keidrive config set`.
# The GNSS module (NEO-6M / M8N, 9600 baud) on a UART the REPL does not use,
# at that UART's default pins where they are free: ESP32 UART2 (TX 17, RX
# 16), ESP32-S3 UART1 on GPIO 17/18, RP2040 UART1 on GP4/GP5.
BOARDS = {
    "esp32": BoardKind("esp32", "ESP32", "esp32", ("xtensawin",), "esp-bin", 0x1000, 0, "mcp2515", (
        ("mcp2515_spi", 2), ("pin_sck", 18), ("pin_mosi", 23), ("pin_miso", 19), ("pin_cs", 5), ("pin_int", 4)),
        (("gps_uart", 2), ("pin_gps_tx", 17), ("pin_gps_rx", 16))),
    "esp32s3": BoardKind("esp32s3", "ESP32S3", "esp32", ("xtensawin",), "esp-bin", 0x0, 9, "mcp2515", (
        ("mcp2515_spi", 1), ("pin_sck", 12), ("pin_mosi", 11), ("pin_miso", 13), ("pin_cs", 10), ("pin_int", 9)),
        (("gps_uart", 1), ("pin_gps_tx", 17), ("pin_gps_rx", 18))),
    "rp2040": BoardKind("rp2040", "RP2040", "rp2", ("armv6m",), "uf2", None, None, "mcp2515", (
        ("mcp2515_spi", 0), ("pin_sck", 18), ("pin_mosi", 19), ("pin_miso", 16), ("pin_cs", 17), ("pin_int", 20)),
        (("gps_uart", 1), ("pin_gps_tx", 4), ("pin_gps_rx", 5))),
    "stm32": BoardKind("stm32", "STM32F405", "pyboard", ("armv7m", "armv7em", "armv7emsp", "armv7emdp"), "dfu",
                       None, None, "machine", (("can_id", 1),)),
}

VIRTUAL_MARK = "keidrive virtual board"


def board_kind(name: str) -> BoardKind:
    from ..errors import KeidriveError

    try:
        return BOARDS[name]
    except KeyError:
        raise KeidriveError(f"unknown board {name!r}: choose one of {', '.join(BOARDS)}") from None


def mpy_version(sys_mpy: int) -> tuple[int, int]:
    """(version, sub-version) of the .mpy format a board loads."""
    return sys_mpy & 0xFF, (sys_mpy >> 8) & 3


def mpy_arch(sys_mpy: int) -> str | None:
    index = sys_mpy >> 10
    return MPY_ARCHS[index] if index < len(MPY_ARCHS) else f"arch#{index}"
