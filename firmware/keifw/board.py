"""Buzzer and LED on a board, pins from the config (none on the laptop)."""


class Indicators:
    def __init__(self, pin_buzzer=None, pin_led=None):
        from machine import Pin  # noqa: board only

        self.buzzer = Pin(pin_buzzer, Pin.OUT, value=0) if pin_buzzer is not None else None
        self.led = Pin(pin_led, Pin.OUT, value=0) if pin_led is not None else None
        self.level = 0

    def show(self, level):
        """level: highest active warning level (0 none, 1 advisory, 2 caution, 3 critical)."""
        if level == self.level:
            return
        self.level = level
        if self.led is not None:
            self.led.value(1 if level else 0)
        if self.buzzer is not None:
            self.buzzer.value(1 if level >= 2 else 0)
