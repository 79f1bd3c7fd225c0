"""The help button and LED on gpiozero's MockFactory (always explicit: no fallback warnings)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from edge.button import PATTERNS, HelpButton, LedState
from tests.support.wait import wait_until

BUTTON, LED = 17, 27
HOLD = 0.05


def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    wait_until(cond, timeout=timeout, interval=0.002)


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


class Helps:
    def __init__(self) -> None:
        self.count = 0
        self.fired = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.fired.set()


def test_brief_press_does_nothing_long_press_fires_once(factory: MockFactory) -> None:
    helps, screen = Helps(), []
    button = HelpButton(BUTTON, LED, HOLD, helps, factory, wake_screen=lambda: screen.append("on"))
    pin = factory.pin(BUTTON)
    try:
        # A brush of the hand: pressed (pulled low) and released at once.
        pin.drive_low()
        pin.drive_high()
        assert button.state == LedState.IDLE

        pin.drive_low()
        assert helps.fired.wait(5)
        gpio_button = button._button
        # Keep holding well past hold_time: still one request, not one per hold_time.
        until(lambda: (gpio_button.held_time or 0) > 4 * HOLD)
        pin.drive_high()
        assert helps.count == 1 and button.presses == 1
        assert screen == ["on"]
        until(lambda: button.state == LedState.HELP_SENT)
    finally:
        button.close()


def test_a_failed_help_request_shows_an_error(factory: MockFactory) -> None:
    def broken() -> None:
        raise RuntimeError("outbox full")

    button = HelpButton(BUTTON, LED, HOLD, broken, factory)
    try:
        factory.pin(BUTTON).drive_low()
        until(lambda: button.state == LedState.ERROR)
    finally:
        button.close()


def test_led_patterns(factory: MockFactory) -> None:
    button = HelpButton(BUTTON, LED, HOLD, Helps(), factory)
    led = factory.pin(LED)
    try:
        assert led.state is False  # idle: off
        button.set_state("online")
        assert led.state is True and button.state == LedState.ONLINE
        button.set_state(LedState.CALL)
        led.clear_states()
        # Blinking: the pin goes both ways on its own.
        until(lambda: {s.state for s in led.states} >= {True, False})
        assert PATTERNS[LedState.CALL].on_s < PATTERNS[LedState.HELP_SENT].on_s
        button.set_state("idle")
        assert led.state is False
        with pytest.raises(ValueError):
            button.set_state("disco")
    finally:
        button.close()
    button.close()  # idempotent
    button.set_state("online")  # ignored once closed


def test_invalid_hold_time(factory: MockFactory) -> None:
    with pytest.raises(ValueError, match="hold_time"):
        HelpButton(BUTTON, LED, 0, Helps(), factory)
