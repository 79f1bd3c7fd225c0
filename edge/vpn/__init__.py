"""The device's WireGuard tunnel to the hub: keys, interface, addresses, rotation."""

from .backend import Backend, BackendError, KernelBackend, UserspaceBackend, open_backend
from .keys import KeyStore, WireGuardKeyError, generate_private_key, public_key, to_base64
from .manager import RotationError, TunnelManager, VpnCollector
from .uapi import UapiClient, UapiError
from .wg import DeviceStatus, PeerStatus, PeerUpdate

__all__ = [
    "Backend",
    "BackendError",
    "DeviceStatus",
    "KernelBackend",
    "KeyStore",
    "PeerStatus",
    "PeerUpdate",
    "RotationError",
    "TunnelManager",
    "UapiClient",
    "UapiError",
    "UserspaceBackend",
    "VpnCollector",
    "WireGuardKeyError",
    "generate_private_key",
    "open_backend",
    "public_key",
    "to_base64",
]
