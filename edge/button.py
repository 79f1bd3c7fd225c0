"""The big help button and its LED.

A long press (``hold_time``) asks for help, so a hand brushing the button does not. The LED
tells the person what the PC is doing without a screen: off when idle, steady when online,
fast blink during a call, slow blink once help has been asked for.

gpiozero runs ``when_held`` on its own thread: ``on_help`` and ``wake_screen`` are called
there and must hand over to the asyncio loop themselves (``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpiozero.pins import Factory

log = logging.getLogger(__name__)


class LedState(enum.StrEnum):
    """What the LED shows."""

    IDLE = "idle"
    ONLINE = "online"
    CALL = "call"
    HELP_SENT = "help_sent"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class LedPattern:
    """Steady off/on, or blinking with these on/off times in seconds."""

    on_s: float
    off_s: float

    @property
    def steady(self) -> bool | None:
        """True steady on, False steady off, None blinking."""
        if self.off_s == 0:
            return True
        if self.on_s == 0:
            return False
        return None


PATTERNS: dict[LedState, LedPattern] = {
    LedState.IDLE: LedPattern(0, 1),
    LedState.ONLINE: LedPattern(1, 0),
    LedState.CALL: LedPattern(0.2, 0.2),
    LedState.HELP_SENT: LedPattern(1.0, 1.0),
    # A short flash every two seconds: unlike anything else, and cheap to notice.
    LedState.ERROR: LedPattern(0.1, 1.9),
}


class HelpButton:
    """A gpiozero Button (held = help) and LED (state patterns) on two GPIO pins."""

    def __init__(
        self,
        pin: int | str,
        led_pin: int | str,
        hold_time: float,
        on_help: Callable[[], None],
        pin_factory: Factory | None = None,
        *,
        wake_screen: Callable[[], None] | None = None,
        pull_up: bool = True,
    ) -> None:
        if not hold_time > 0:
            raise ValueError(f"hold_time: must be > 0 seconds, got {hold_time!r}")
        # Imported here: most PCs have no button, and gpiozero costs the daemon ~5 MB.
        from gpiozero import LED, Button

        self._on_help = on_help
        self._wake_screen = wake_screen
        self._lock = threading.Lock()
        self._state = LedState.IDLE
        self._closed = False
        self.presses = 0  # help requests fired, for diagnostics
        self._button = Button(
            pin,
            pull_up=pull_up,
            hold_time=hold_time,
            hold_repeat=False,  # one help request per press, however long it is held
            pin_factory=pin_factory,
        )
        try:
            self._led = LED(led_pin, pin_factory=pin_factory)
        except Exception:
            self._button.close()
            raise
        self._button.when_held = self._held
        self._show(PATTERNS[self._state])

    @property
    def state(self) -> LedState:
        """What the LED is showing."""
        return self._state

    def set_state(self, state: LedState | str) -> None:
        """Show ``state`` on the LED (idle, online, call, help_sent, error)."""
        new = LedState(state)
        with self._lock:
            if self._closed or new == self._state:
                return
            self._state = new
            self._show(PATTERNS[new])

    def close(self) -> None:
        """Release the pins. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._button.close()
        self._led.close()

    def _show(self, pattern: LedPattern) -> None:
        steady = pattern.steady
        if steady is True:
            self._led.on()
        elif steady is False:
            self._led.off()
        else:
            self._led.blink(on_time=pattern.on_s, off_time=pattern.off_s, background=True)

    def _held(self) -> None:
        self.presses += 1
        log.info("help button held")
        if self._wake_screen is not None:
            try:
                self._wake_screen()
            except Exception:
                # The screen is a comfort; the help request is what matters.
                log.exception("could not wake the screen")
        try:
            self._on_help()
        except Exception:
            log.exception("help request failed")
            self.set_state(LedState.ERROR)
            return
        # on_help returned: the request is queued (the outbox is durable), so confirm it.
        self.set_state(LedState.HELP_SENT)
