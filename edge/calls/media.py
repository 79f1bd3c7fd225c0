"""Media sources and sinks for the answering PC (imported only inside the call process).

Sources: the camera (v4l2) and microphone (ALSA, which reaches PipeWire/PulseAudio and its
echo-cancel module through the "default" device), or a synthetic test pattern and tone. Sinks
count what arrives (so tests and the control plane can see media flowing) and, on a real PC,
play the caregiver's voice on ALSA and show their video full screen on the framebuffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import math
import queue
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from .config import CallConfig

log = logging.getLogger(__name__)

AUDIO_RATE = 48_000
AUDIO_PTIME = 0.020  # 20 ms frames, what Opus sends
VIDEO_CLOCK = 90_000


class MediaError(RuntimeError):
    """A camera, microphone or display could not be opened; the message names which."""


# --- synthetic sources --------------------------------------------------------------------


class SyntheticVideoTrack(MediaStreamTrack):
    """A moving bar on a grey background at ``fps``: cheap, recognisable, deterministic."""

    kind = "video"

    def __init__(self, width: int, height: int, fps: int) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._period = 1.0 / fps
        self._start: float | None = None
        self._count = 0
        # A few pre-rendered frames, cycled: generating pixels per frame in pure Python would
        # cost more CPU than encoding them, and more of them would only cost memory.
        self._frames = [self._render(i, 6) for i in range(6)]

    def _render(self, index: int, total: int) -> list[bytes]:
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        planes: list[bytes] = []
        for number, plane in enumerate(frame.planes):
            rows = plane.buffer_size // plane.line_size
            width = self.width if number == 0 else (self.width + 1) // 2
            if number == 0:
                bar_w = max(1, width // 8)
                x0 = (width - bar_w) * index // max(1, total - 1)
                row = bytearray([96]) * plane.line_size
                row[x0 : x0 + bar_w] = bytes([235]) * bar_w
                planes.append(bytes(row) * rows)
            else:
                planes.append(bytes([128]) * plane.buffer_size)
        return planes

    async def recv(self) -> av.VideoFrame:
        """The next frame, paced at ``fps``."""
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            due = self._start + self._count * self._period
            if due > now:
                await asyncio.sleep(due - now)
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        pattern = self._frames[self._count % len(self._frames)]
        for plane, data in zip(frame.planes, pattern, strict=True):
            plane.update(data)
        frame.pts = int(self._count * self._period * VIDEO_CLOCK)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._count += 1
        return frame


class SyntheticAudioTrack(MediaStreamTrack):
    """A quiet 440 Hz tone, 20 ms at a time, mono 48 kHz."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0, amplitude: float = 0.1) -> None:
        super().__init__()
        samples = int(AUDIO_RATE * AUDIO_PTIME)
        self._samples = samples
        # One second of tone; 440 Hz fits a whole number of periods in it, so it loops cleanly.
        total = AUDIO_RATE
        peak = int(32767 * amplitude)
        wave = [
            int(peak * math.sin(2 * math.pi * frequency * i / AUDIO_RATE)) for i in range(total)
        ]
        self._pcm = struct.pack(f"<{total}h", *wave)
        self._start: float | None = None
        self._count = 0

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms of tone, paced in real time."""
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            due = self._start + self._count * AUDIO_PTIME
            if due > now:
                await asyncio.sleep(due - now)
        frame = av.AudioFrame(format="s16", layout="mono", samples=self._samples)
        offset = (self._count * self._samples) % AUDIO_RATE
        chunk = self._pcm[offset * 2 : (offset + self._samples) * 2]
        frame.planes[0].update(chunk)
        frame.pts = self._count * self._samples
        frame.sample_rate = AUDIO_RATE
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._count += 1
        return frame


# --- sources --------------------------------------------------------------------------------


@dataclass
class Sources:
    """The tracks this PC sends, and what must be closed after the call."""

    audio: MediaStreamTrack | None
    video: MediaStreamTrack | None
    players: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        """Stop every track (which closes the camera and microphone)."""
        for track in (self.audio, self.video):
            if track is not None:
                track.stop()


def open_sources(config: CallConfig, width: int, height: int) -> Sources:
    """Open the camera and microphone (or the synthetic ones) for one call."""
    if config.media == "synthetic":
        return Sources(SyntheticAudioTrack(), SyntheticVideoTrack(width, height, config.fps))
    from aiortc.contrib.media import MediaPlayer

    players: list[Any] = []
    try:
        video = MediaPlayer(
            config.video_device,
            format="v4l2",
            options={"video_size": f"{width}x{height}", "framerate": str(config.fps)},
        )
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"camera: cannot open {config.video_device}: {exc}") from exc
    players.append(video)
    try:
        audio = MediaPlayer(
            config.audio_input,
            format="alsa",
            options={"channels": "1", "sample_rate": str(AUDIO_RATE)},
        )
    except (av.error.FFmpegError, OSError) as exc:
        if video.video is not None:
            video.video.stop()
        raise MediaError(
            f"microphone: cannot open ALSA device {config.audio_input}: {exc}"
        ) from exc
    players.append(audio)
    return Sources(audio.audio, video.video, players)


# --- sinks ----------------------------------------------------------------------------------


@dataclass
class SinkCounters:
    """What has arrived from the caregiver."""

    video_frames: int = 0
    audio_frames: int = 0
    audio_samples: int = 0
    width: int = 0
    height: int = 0
    first_video_at: float | None = None
    first_audio_at: float | None = None
    playback_errors: int = 0


class _Output(threading.Thread):
    """Writes frames to an FFmpeg output device off the event loop (ALSA or fbdev block)."""

    def __init__(self, name: str, open_fn: Any, write_fn: Any) -> None:
        super().__init__(name=name, daemon=True)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=32)
        self._open, self._write = open_fn, write_fn
        self.error: str | None = None

    def put(self, frame: Any) -> None:
        # A late frame is worth nothing in a live call: drop rather than queue up delay.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(frame)

    def close(self) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def run(self) -> None:
        try:
            state = self._open()
        except Exception as exc:
            self.error = f"{self.name}: {exc}"
            log.error("cannot open %s", self.error)
            return
        try:
            while (frame := self._queue.get()) is not None:
                self._write(state, frame)
        except Exception as exc:
            self.error = f"{self.name}: {exc}"
            log.error("playback stopped: %s", self.error)
        finally:
            with contextlib.suppress(Exception):
                state[0].close()


def _audio_output(device: str) -> _Output:
    def open_() -> list[Any]:
        container = av.open(device, "w", format="alsa")
        stream = container.add_stream("pcm_s16le", rate=AUDIO_RATE, layout="mono")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE)
        return [container, stream, resampler]

    def write(state: list[Any], frame: av.AudioFrame) -> None:
        container, stream, resampler = state
        for out in resampler.resample(frame):
            out.pts = None
            for packet in stream.encode(out):
                container.mux(packet)

    return _Output("speaker", open_, write)


def _video_output(device: str) -> _Output:
    def open_() -> list[Any]:
        # fbdev converts nothing itself: frames are scaled to the first frame's size and sent
        # as BGRA, the usual 32-bit framebuffer layout (the kiosk sets the console to it).
        return [av.open(device, "w", format="fbdev"), None]

    def write(state: list[Any], frame: av.VideoFrame) -> None:
        container, stream = state
        if stream is None:
            stream = container.add_stream("rawvideo", rate=30)
            stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, "bgra"
            state[1] = stream
        for packet in stream.encode(
            frame.reformat(width=stream.width, height=stream.height, format="bgra")
        ):
            container.mux(packet)

    return _Output("display", open_, write)


class Sink:
    """Consumes the caregiver's tracks: counts them, and plays them when ``play`` is set."""

    def __init__(self, config: CallConfig) -> None:
        self.counters = SinkCounters()
        self._play = config.sink == "device"
        self._config = config
        self._tasks: list[asyncio.Task[None]] = []
        self._outputs: list[_Output] = []

    def add(self, track: MediaStreamTrack) -> None:
        """Start consuming ``track``."""
        output: _Output | None = None
        if self._play:
            output = (
                _audio_output(self._config.audio_output)
                if track.kind == "audio"
                else _video_output(self._config.display)
            )
            output.start()
            self._outputs.append(output)
        self._tasks.append(
            asyncio.create_task(self._consume(track, output), name=f"sink-{track.kind}")
        )

    async def _consume(self, track: MediaStreamTrack, output: _Output | None) -> None:
        c = self.counters
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.VideoFrame):
                c.video_frames += 1
                c.width, c.height = frame.width, frame.height
                if c.first_video_at is None:
                    c.first_video_at = time.time()
            elif isinstance(frame, av.AudioFrame):
                c.audio_frames += 1
                c.audio_samples += frame.samples
                if c.first_audio_at is None:
                    c.first_audio_at = time.time()
            if output is not None:
                output.put(frame)

    def errors(self) -> list[str]:
        """Playback problems so far (the call goes on without sound or picture)."""
        return [o.error for o in self._outputs if o.error]

    async def stop(self) -> None:
        """Stop consuming and close the outputs."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for output in self._outputs:
            output.close()
