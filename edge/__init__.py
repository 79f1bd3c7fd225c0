"""ΔiFronte edge: the daemon on each refurbished PC."""

__version__ = "0.1.0"
