"""The workshop's pure core: intake, lifecycle, erasure certificates, diagnostics, impact.

No database and no HTTP here: the models map rows onto these dataclasses and the routes
call these functions.
"""

from control_plane.workshop.assessment import (
    Assessment,
    Finding,
    Inventory,
    ReportError,
    Severity,
    Thresholds,
    assess,
)
from control_plane.workshop.asset_tags import (
    LabelItem,
    LabelSheet,
    format_asset_tag,
    label_pdf,
    machine_url,
    parse_asset_tag,
)
from control_plane.workshop.certificates import (
    ErasureBatch,
    ErasureMethod,
    ErasureRecord,
    MachineIdentity,
    VerificationResult,
    batch_summary_pdf,
    certified_serials,
    erasure_certificate_pdf,
)
from control_plane.workshop.documents import Organization
from control_plane.workshop.impact import (
    HoursEntry,
    ImpactFigures,
    compute_impact,
    impact_csv,
    impact_pdf,
)
from control_plane.workshop.intake import DonatedItem, Donation, IntakeError, ItemKind, plan_intake
from control_plane.workshop.lifecycle import (
    MachineFacts,
    MachineState,
    TransitionError,
    TransitionParams,
    TransitionRecord,
    check_transition,
    transition,
)

__all__ = [
    "Assessment",
    "DonatedItem",
    "Donation",
    "ErasureBatch",
    "ErasureMethod",
    "ErasureRecord",
    "Finding",
    "HoursEntry",
    "ImpactFigures",
    "IntakeError",
    "Inventory",
    "ItemKind",
    "LabelItem",
    "LabelSheet",
    "MachineFacts",
    "MachineIdentity",
    "MachineState",
    "Organization",
    "ReportError",
    "Severity",
    "Thresholds",
    "TransitionError",
    "TransitionParams",
    "TransitionRecord",
    "VerificationResult",
    "assess",
    "batch_summary_pdf",
    "certified_serials",
    "check_transition",
    "compute_impact",
    "erasure_certificate_pdf",
    "format_asset_tag",
    "impact_csv",
    "impact_pdf",
    "label_pdf",
    "machine_url",
    "parse_asset_tag",
    "plan_intake",
    "transition",
]
