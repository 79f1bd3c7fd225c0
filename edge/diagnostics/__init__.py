"""Hardware diagnostics: a JSON report of what a donated PC is made of and what works."""

from .command import add_arguments, main, run
from .report import REPORT_VERSION, build_report, telecare_issues
from .summary import format_summary
from .upload import UploadError, upload_report

__all__ = [
    "REPORT_VERSION",
    "UploadError",
    "add_arguments",
    "build_report",
    "format_summary",
    "main",
    "run",
    "telecare_issues",
    "upload_report",
]
