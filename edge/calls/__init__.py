"""Calls on the device: the caregiver's WebRTC call, answered by aiortc in a child process.

Importing this package stays light (no aiortc, no PyAV): :class:`CallManager` handles the
signalling and starts ``edge.calls.worker`` only when an offer arrives.
"""

from .config import CallConfig
from .manager import CallManager, CallState
from .policy import Decision, decide, in_window

__all__ = ["CallConfig", "CallManager", "CallState", "Decision", "decide", "in_window"]
