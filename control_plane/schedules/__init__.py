"""Wake schedules: appointments become wake windows, published to devices and watched.

``expansion`` (RRULE to UTC windows) and ``reconcile`` (plan against report, presence) are
pure; ``service`` stores and publishes; ``api`` and ``pages`` are the ways in for people;
``feature.install`` wires it all into the app.
"""

from control_plane.schedules.config import ScheduleConfig
from control_plane.schedules.feature import install
from control_plane.schedules.service import Scheduler, record_call

__all__ = ["ScheduleConfig", "Scheduler", "install", "record_call"]
