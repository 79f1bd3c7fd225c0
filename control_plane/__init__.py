"""ΔiFronte control plane: fleet, schedules, calls, jobs, workshop, marketplace, console."""

__version__ = "0.1.0"
