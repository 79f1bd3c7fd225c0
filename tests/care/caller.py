"""A caregiver's browser played by aiortc: synthetic camera and microphone, counting sink."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)

from edge.calls.config import CallConfig
from edge.calls.media import Sink, SyntheticAudioTrack, SyntheticVideoTrack


def peer(ice_servers: list[dict[str, Any]], *, relay: bool = False) -> RTCPeerConnection:
    """A peer connection with exactly these servers (never aiortc's public default)."""
    config = RTCConfiguration(
        iceServers=[
            RTCIceServer(
                urls=s["urls"][0] if isinstance(s["urls"], list) else s["urls"],
                username=s.get("username"),
                credential=s.get("credential"),
            )
            for s in ice_servers
        ]
    )
    if relay:
        config.iceTransportPolicy = RTCIceTransportPolicy.RELAY
    return RTCPeerConnection(config)


class Caller:
    """One call from the "browser" side over the control plane's WebSocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.ready: dict[str, Any] | None = None
        self.pc: RTCPeerConnection | None = None
        self.sink = Sink(CallConfig(sink="count"))
        self.ended: dict[str, Any] | None = None
        self._reader: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.done = asyncio.Event()

    async def start(self, *, send_offer: bool = True) -> None:
        """Wait for "ready" (or an immediate "ended"), then offer with synthetic media."""
        first = json.loads(await self.ws.recv())
        self.messages.append(first)
        if first["type"] == "ended":
            self.ended = first
            with contextlib.suppress(Exception):  # read the close frame and its code
                await asyncio.wait_for(self.ws.wait_closed(), 5)
            self.done.set()
            return
        assert first["type"] == "ready", first
        self.ready = first
        self._reader = asyncio.create_task(self._read())
        if not send_offer:
            return
        self.pc = pc = peer(first["ice_servers"])
        pc.on("track", self.sink.add)

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState in ("connected", "failed"):
                await self.send({"type": "state", "state": pc.connectionState})
            if pc.connectionState == "connected":
                self.connected.set()

        pc.addTrack(SyntheticAudioTrack())
        pc.addTrack(SyntheticVideoTrack(320, 240, 15))
        await pc.setLocalDescription(await pc.createOffer())
        await self.send({"type": "offer", "sdp": pc.localDescription.sdp})

    async def send(self, message: dict[str, Any]) -> None:
        """One JSON message to the control plane."""
        with contextlib.suppress(Exception):
            await self.ws.send(json.dumps(message))

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                self.messages.append(msg)
                if msg["type"] == "answer" and self.pc is not None:
                    await self.pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "answer"))
                elif msg["type"] == "ended":
                    self.ended = msg
        finally:
            self.done.set()

    def types(self) -> list[str]:
        """The message types received so far."""
        return [m["type"] for m in self.messages]

    async def hang_up(self) -> None:
        """Hang up as the page's button does."""
        await self.send({"type": "hangup"})

    async def close(self) -> None:
        """Stop media and the socket."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self.sink.stop()
        if self.pc is not None:
            await self.pc.close()
        with contextlib.suppress(Exception):
            await self.ws.close()
