"""One call's media, answered with aiortc, in a process of its own.

The daemon starts ``python -m edge.calls.worker`` when an offer arrives and talks to it in JSON
lines (commands on stdin, events on stdout; logs on stderr). aiortc, PyAV and the codecs are
loaded only here, so an idle PC never carries them, the memory goes back to the system when the
call ends, and a crash in a codec ends one call, not the daemon.

Commands: ``{"op": "prepare", "ice_servers": [...], "width": .., "height": .., "max_kbps": ..}``,
``{"op": "offer", "sdp": ..}``, ``{"op": "candidate", "candidate": {...} | null}``,
``{"op": "stop", "reason": ..}``. Events: ``ready``, ``answer``, ``state``, ``stats``,
``error``, ``ended`` (always last).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

from .config import CallConfig
from .ice import restrict_host_addresses, usable_servers
from .stats import StatsTracker

log = logging.getLogger("edge.calls.worker")

Emit = Callable[[dict[str, Any]], None]


class CallWorker:
    """The answering side of one WebRTC call (usable in-process, as the tests do)."""

    def __init__(self, config: CallConfig, emit: Emit) -> None:
        self.config = config
        self._emit = emit
        self._pc: Any = None
        self._sources: Any = None
        self.sink: Any = None
        self._pending: list[dict[str, Any] | None] = []
        self._remote_set = False
        self._tracker = StatsTracker()
        self._closed = False
        self.width, self.height = config.width, config.height
        self.max_kbps = config.max_kbps

    async def prepare(
        self,
        ice_servers: list[dict[str, Any]],
        *,
        width: int | None = None,
        height: int | None = None,
        max_kbps: int | None = None,
        transport_policy: str = "all",
    ) -> None:
        """Load aiortc, open the media, pick ICE servers: all that can happen before the offer."""
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
        from aiortc.codecs import vpx

        from .media import Sink, open_sources

        # The desired twin may lower the configured limits, never raise them.
        self.width = min(self.config.width, width or self.config.width)
        self.height = min(self.config.height, height or self.config.height)
        self.max_kbps = min(self.config.max_kbps, max_kbps or self.config.max_kbps)
        # aiortc's VP8 encoder follows the receiver's bandwidth estimate between module-level
        # bounds; this process exists for one call, so the bounds are this call's limits.
        vpx.MAX_BITRATE = self.max_kbps * 1000
        vpx.DEFAULT_BITRATE = min(vpx.DEFAULT_BITRATE, vpx.MAX_BITRATE)
        vpx.MIN_BITRATE = min(vpx.MIN_BITRATE, vpx.MAX_BITRATE // 2)
        restrict_host_addresses(self.config.ice_exclude_interfaces, self.config.ice_ipv6)

        servers = await usable_servers(ice_servers, self.config.ice_probe_timeout_s)
        # An explicit (possibly empty) list: aiortc would otherwise use a public STUN server.
        pc_config = RTCConfiguration(
            iceServers=[
                RTCIceServer(
                    urls=s["urls"], username=s.get("username"), credential=s.get("credential")
                )
                for s in servers
            ]
        )
        if transport_policy == "relay":
            from aiortc import RTCIceTransportPolicy

            pc_config.iceTransportPolicy = RTCIceTransportPolicy.RELAY
        self._pc = pc = RTCPeerConnection(pc_config)
        self.sink = Sink(self.config)
        self._sources = open_sources(self.config, self.width, self.height)

        @pc.on("track")
        def _on_track(track: Any) -> None:
            self.sink.add(track)

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            self._emit({"ev": "state", "state": pc.connectionState})

        self._emit({"ev": "ready", "ice_servers": [s["urls"][0] for s in servers]})

    async def answer(self, offer_sdp: str) -> str:
        """Apply the caregiver's offer and return our answer (all candidates included)."""
        from aiortc import RTCRtpSender, RTCSessionDescription

        pc = self._pc
        if pc is None:
            raise RuntimeError("offer before prepare")
        # Our transceivers exist before the offer is applied, so aiortc pairs them with the
        # offer's m-lines and honours our codec choice: VP8 only, the lighter codec to encode
        # on an old CPU (H.264 would go through libx264).
        # Only for the kinds the offer has: an unpaired transceiver breaks createAnswer.
        offered = {line[2:].split(" ", 1)[0] for line in offer_sdp.splitlines() if line[:2] == "m="}
        if self._sources.audio is not None and "audio" in offered:
            pc.addTransceiver(self._sources.audio, direction="sendrecv")
        if self._sources.video is not None and "video" in offered:
            video = pc.addTransceiver(self._sources.video, direction="sendrecv")
            video.setCodecPreferences(
                [
                    c
                    for c in RTCRtpSender.getCapabilities("video").codecs
                    if c.mimeType.lower() in ("video/vp8", "video/rtx")
                ]
            )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        self._remote_set = True
        for candidate in self._pending:
            await self._add_candidate(candidate)
        self._pending.clear()
        await pc.setLocalDescription(await pc.createAnswer())
        sdp: str = pc.localDescription.sdp
        return sdp

    async def add_candidate(self, candidate: dict[str, Any] | None) -> None:
        """A trickled candidate from the browser (None: end of candidates)."""
        if not self._remote_set:
            self._pending.append(candidate)
            return
        await self._add_candidate(candidate)

    async def _add_candidate(self, candidate: dict[str, Any] | None) -> None:
        from aiortc.sdp import candidate_from_sdp

        if candidate is None or not candidate.get("candidate"):
            await self._pc.addIceCandidate(None)
            return
        text = str(candidate["candidate"])
        parsed = candidate_from_sdp(
            text.split(":", 1)[1] if text.startswith("candidate:") else text
        )
        parsed.sdpMid = candidate.get("sdpMid")
        parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
        await self._pc.addIceCandidate(parsed)

    async def stats(self) -> dict[str, float]:
        """Quality figures and what the sink has received so far."""
        out: dict[str, float] = {}
        if self._pc is not None:
            report = await self._pc.getStats()
            out.update(self._tracker.summarise(report.values(), time.monotonic()))
        if self.sink is not None:
            c = self.sink.counters
            out.update(
                frames_received=float(c.video_frames),
                audio_samples_received=float(c.audio_samples),
                video_width_in=float(c.width),
                video_height_in=float(c.height),
                playback_errors=float(len(self.sink.errors())),
            )
        out.update(video_width_out=float(self.width), video_height_out=float(self.height))
        return out

    async def close(self) -> None:
        """Hang up: stop the media and the peer connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._sources is not None:
            self._sources.stop()
        if self.sink is not None:
            await self.sink.stop()
        if self._pc is not None:
            await self._pc.close()


# --- the process shell ------------------------------------------------------------------------


def load_media_stack() -> None:
    """Import aiortc, PyAV and the codecs (what makes a cold call process slow to answer)."""
    import aiortc
    import aiortc.codecs.vpx  # noqa: F401

    from . import media  # noqa: F401 - PyAV's frames and the sinks


def _write(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def _stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def serve(config: CallConfig, emit: Emit = _write) -> int:
    """Run one call from stdin commands until ``stop``, stdin closing, or the media failing."""
    worker = CallWorker(config, emit)
    reader = await _stdin_lines()
    stats_task: asyncio.Task[None] | None = None
    reason = "stopped"

    async def stats_loop() -> None:
        while True:
            await asyncio.sleep(config.stats_interval_s)
            emit({"ev": "stats", "stats": await worker.stats()})

    try:
        while line := await reader.readline():
            cmd = json.loads(line)
            op = cmd.get("op")
            try:
                if op == "load":
                    # Warm start: pay for the imports now, before any call arrives.
                    load_media_stack()
                    emit({"ev": "loaded"})
                elif op == "prepare":
                    started = time.monotonic()
                    await worker.prepare(
                        cmd.get("ice_servers") or [],
                        width=cmd.get("width"),
                        height=cmd.get("height"),
                        max_kbps=cmd.get("max_kbps"),
                    )
                    log.info("prepared in %.2fs", time.monotonic() - started)
                elif op == "offer":
                    started = time.monotonic()
                    emit({"ev": "answer", "sdp": await worker.answer(cmd["sdp"])})
                    log.info("answered in %.2fs", time.monotonic() - started)
                    stats_task = asyncio.create_task(stats_loop(), name="stats")
                elif op == "candidate":
                    await worker.add_candidate(cmd.get("candidate"))
                elif op == "stop":
                    reason = str(cmd.get("reason") or "stopped")
                    break
            except Exception as exc:  # media or SDP trouble: tell the daemon, end the call
                log.exception("call %s failed", op)
                kind = "media" if type(exc).__name__ == "MediaError" else "webrtc"
                emit({"ev": "error", "reason": kind, "message": str(exc)})
                reason = "error"
                break
        else:
            reason = "daemon gone"
    finally:
        if stats_task is not None:
            stats_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stats_task
        with contextlib.suppress(Exception):
            emit({"ev": "stats", "stats": await worker.stats()})
        await worker.close()
        emit({"ev": "ended", "reason": reason})
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: the call configuration as JSON in argv[1]."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s call: %(message)s"
    )
    config = msgspec.json.decode(args[0].encode(), type=CallConfig) if args else CallConfig()
    return asyncio.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
