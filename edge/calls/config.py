"""The ``[call]`` section of the edge configuration: media sources, sinks, ICE, timeouts."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

_Fps = Annotated[int, msgspec.Meta(ge=1, le=60)]
_Pixels = Annotated[int, msgspec.Meta(ge=16, le=4096)]

# Interfaces whose addresses are never offered as ICE host candidates: the VPN tunnel,
# containers and bridges are unreachable from a caregiver's browser, and each useless
# candidate costs connectivity checks (and STUN queries) during call setup.
DEFAULT_EXCLUDED_INTERFACES = ("lo", "wg*", "tun*", "docker*", "br-*", "veth*", "virbr*")


class CallConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """How this PC takes calls; the control plane's ``twin/desired.call`` may lower the limits."""

    enabled: bool = True
    # "v4l2" + "alsa": the real camera and microphone; "synthetic": generated test pattern and
    # tone (tests, demo, commissioning without a camera).
    media: Literal["v4l2", "synthetic"] = "v4l2"
    video_device: str = "/dev/video0"
    # ALSA device: "default" goes through PipeWire/PulseAudio (and its echo-cancel module when
    # the image sets it up as the default source and sink); "hw:0" bypasses it.
    audio_input: str = "default"
    audio_output: str = "default"
    width: _Pixels = 640
    height: _Pixels = 480
    fps: _Fps = 15
    max_kbps: Annotated[int, msgspec.Meta(ge=64, le=10_000)] = 800
    # "count": count received frames and samples only (tests, headless); "device": play the
    # caregiver's voice on audio_output and show their video on the framebuffer display.
    sink: Literal["count", "device"] = "device"
    display: str = "/dev/fb0"
    # Rings this long when nobody answers before the PC gives up by itself (the control plane
    # usually hangs up first with its own, shorter, timeout).
    ring_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 60.0
    stats_interval_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 2.0
    # ICE: servers that do not answer a STUN request within this time are left out, so an
    # unreachable STUN/TURN server cannot hold up the answer (aiortc waits up to 5 s for each).
    ice_probe_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=10)] = 0.7
    ice_exclude_interfaces: list[str] = msgspec.field(
        default_factory=lambda: list(DEFAULT_EXCLUDED_INTERFACES)
    )
    ice_ipv6: bool = False
    # Inside appointment windows keep a call process started with aiortc loaded, so a call
    # is answered without waiting for the imports (seconds on an old PC). Outside windows,
    # and after the window ends, nothing of it stays in memory.
    prewarm: bool = True
    prewarm_check_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 15.0
    # A call whose media process says nothing for this long is treated as dead.
    worker_silence_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 20.0
