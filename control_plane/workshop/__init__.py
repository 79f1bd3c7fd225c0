"""The workshop's pure core: intake, lifecycle, erasure certificates, diagnostics, impact.

No database and no HTTP here: the models map rows onto these dataclasses and the routes
call these functions.
"""

from control_plane.workshop.assessment import (
    Assessment,
    Finding,
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
from control_plane.workshop.intake import (
    DonatedItem,
    Donation,
    IntakeError,
    ItemKind,
    parse_manifest_csv,
    plan_intake,
)
from control_plane.workshop.inventory import DiskInfo, Inventory, ReportError, read_inventory
from control_plane.workshop.lifecycle import (
    MachineFacts,
    MachineState,
    TransitionError,
    TransitionParams,
    TransitionRecord,
    allowed_targets,
    check_transition,
    intake_record,
    transition,
)

__all__ = [
    "Assessment",
    "DiskInfo",
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
    "allowed_targets",
    "assess",
    "batch_summary_pdf",
    "certified_serials",
    "check_transition",
    "compute_impact",
    "erasure_certificate_pdf",
    "format_asset_tag",
    "impact_csv",
    "impact_pdf",
    "intake_record",
    "label_pdf",
    "machine_url",
    "parse_asset_tag",
    "parse_manifest_csv",
    "plan_intake",
    "read_inventory",
    "transition",
]
