"""Asset tags, intake of a donation, and the printable labels with their QR codes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import segno
from PIL import Image

from control_plane.workshop import documents
from control_plane.workshop.asset_tags import (
    AssetTag,
    LabelItem,
    LabelSheet,
    asset_tags,
    format_asset_tag,
    label_pdf,
    machine_url,
    parse_asset_tag,
)
from control_plane.workshop.intake import (
    DonatedItem,
    Donation,
    IntakeError,
    ItemKind,
    parse_manifest_csv,
    plan_intake,
)
from tests.workshop.pdf_helpers import base_fonts, link_uris, pdf_text, reader

BASE = "https://cp.difronte.example/"
CREATED = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)


# -- tags ------------------------------------------------------------------------------


def test_tag_format_is_fixed() -> None:
    assert format_asset_tag(2026, 123) == "DF-2026-000123"
    assert format_asset_tag(2026, 1, prefix="FAC") == "FAC-2026-000001"
    # Past a million machines the number grows rather than wrapping round.
    assert format_asset_tag(2031, 1_234_567) == "DF-2031-1234567"


def test_tag_round_trip_and_forgiving_parse() -> None:
    assert parse_asset_tag(" df-2026-000123 ") == AssetTag("DF", 2026, 123)
    assert str(parse_asset_tag("DF-2026-000123")) == "DF-2026-000123"
    assert parse_asset_tag("DF-2026-000009") < parse_asset_tag("DF-2026-000010")


@pytest.mark.parametrize(
    "bad", ["", "DF-26-000123", "DF-2026-123", "D-2026-000123", "DF2026000123"]
)
def test_bad_tags_name_the_field(bad: str) -> None:
    with pytest.raises(ValueError, match="asset_tag"):
        parse_asset_tag(bad)


def test_bad_tag_parts() -> None:
    with pytest.raises(ValueError, match="sequence"):
        format_asset_tag(2026, 0)
    with pytest.raises(ValueError, match="year"):
        format_asset_tag(1999, 5)
    with pytest.raises(ValueError, match="prefix"):
        format_asset_tag(2026, 5, prefix="df")


def test_consecutive_tags_for_a_pallet() -> None:
    assert asset_tags(2026, 41, 3) == ["DF-2026-000041", "DF-2026-000042", "DF-2026-000043"]
    assert asset_tags(2026, 41, 0) == []


def test_machine_url() -> None:
    url = machine_url("https://cp.example.org/console/", "df-2026-000007")
    assert url == "https://cp.example.org/console/workshop/machines/DF-2026-000007"
    with pytest.raises(ValueError, match="base_url"):
        machine_url("cp.example.org", "DF-2026-000007")


# -- intake ----------------------------------------------------------------------------


def donation(**overrides: object) -> Donation:
    values: dict[str, object] = {
        "donor": "Università degli Studi di Perugia",
        "received_on": date(2026, 3, 2),
        "consent_erase_reuse": True,
        "items": (
            DonatedItem(ItemKind.DESKTOP, "Lenovo", "ThinkCentre M700", "PC0ABCDE", 7.5),
            DonatedItem(ItemKind.LAPTOP, "Dell", "Latitude E7450", "5XYZ123", 1.8),
        ),
    }
    values.update(overrides)
    return Donation(**values)  # type: ignore[arg-type]


def test_intake_tags_every_item_in_the_intake_year() -> None:
    tagged = plan_intake(donation(), next_sequence=120)
    assert [t.asset_tag for t in tagged] == ["DF-2026-000120", "DF-2026-000121"]
    assert tagged[1].item.model == "Latitude E7450"


def test_intake_refuses_without_consent() -> None:
    with pytest.raises(IntakeError) as caught:
        plan_intake(donation(consent_erase_reuse=False), next_sequence=1)
    assert caught.value.field == "consent_erase_reuse"
    assert "consenso" in caught.value.message_it


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"donor": "  "}, "donor"),
        ({"items": ()}, "items"),
        (
            {"items": (DonatedItem(ItemKind.DESKTOP, weight_kg=-2),)},
            "items[0].weight_kg",
        ),
        (
            {
                "items": (
                    DonatedItem(ItemKind.DESKTOP, serial_number="abc1"),
                    DonatedItem(ItemKind.DESKTOP, serial_number="ABC1"),
                )
            },
            "items[1].serial_number",
        ),
    ],
)
def test_intake_errors_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(IntakeError) as caught:
        plan_intake(donation(**overrides), next_sequence=1)
    assert caught.value.field == field
    assert str(caught.value).startswith(field)


def test_pallet_manifest_with_semicolons_and_quantities() -> None:
    manifest = (
        "kind;manufacturer;model;serial_number;weight_kg;quantity\n"
        "desktop;HP;EliteDesk 800 G1;CZC1;8,2;\n"
        "\n"
        "laptop;Dell;Latitude E5440;;2,1;3\n"
        "All-in-one;Acer;Veriton Z;;;\n"
    )
    items = parse_manifest_csv(manifest)
    assert len(items) == 5
    assert items[0] == DonatedItem(ItemKind.DESKTOP, "HP", "EliteDesk 800 G1", "CZC1", 8.2)
    assert items[1] == items[2] == items[3]
    assert items[1].weight_kg == pytest.approx(2.1)
    assert items[4].kind is ItemKind.ALL_IN_ONE
    tagged = plan_intake(donation(items=tuple(items)), next_sequence=1)
    assert tagged[-1].asset_tag == "DF-2026-000005"


@pytest.mark.parametrize(
    ("manifest", "field"),
    [
        ("model,serial_number\nX,1\n", "manifest.kind"),
        ("kind,colour\ndesktop,red\n", "manifest.colour"),
        ("kind,weight_kg\ndesktop,heavy\n", "manifest line 2.weight_kg"),
        ("kind\ndesktop\ntoaster\n", "manifest line 3.kind"),
        ("kind,quantity\ndesktop,1.5\n", "manifest line 2.quantity"),
        ("kind,serial_number,quantity\ndesktop,S1,2\n", "manifest line 2.quantity"),
    ],
)
def test_manifest_errors_name_line_and_column(manifest: str, field: str) -> None:
    with pytest.raises(IntakeError) as caught:
        parse_manifest_csv(manifest)
    assert caught.value.field == field


# -- labels ----------------------------------------------------------------------------


def qr_modules(image: Image.Image, size: int, scale: int = 8, border: int = 4) -> list[list[int]]:
    """Read a QR image back into modules (1 = dark) by sampling each module's centre."""
    grey = image.convert("L")
    assert grey.size == ((size + 2 * border) * scale,) * 2

    def dark(row: int, column: int) -> int:
        centre = ((column + border) * scale + scale // 2, (row + border) * scale + scale // 2)
        value = grey.getpixel(centre)
        assert isinstance(value, int)
        return 1 if value < 128 else 0

    return [[dark(r, c) for c in range(size)] for r in range(size)]


def expected_modules(url: str) -> list[list[int]]:
    return [list(row) for row in segno.make(url, error="m", micro=False).matrix]


def test_label_pdf_has_the_tags_and_a_qr_code_for_each() -> None:
    items: list[LabelItem | str] = [
        LabelItem("DF-2026-000123", "Lenovo ThinkCentre M700", "PC0ABCDE"),
        LabelItem("DF-2026-000124", "Dell Latitude E7450", "5XYZ123"),
        "DF-2026-000125",
    ]
    data = label_pdf(items, BASE, created_at=CREATED)
    text = pdf_text(data)
    for tag in ("DF-2026-000123", "DF-2026-000124", "DF-2026-000125"):
        assert tag in text
    assert "S/N PC0ABCDE" in text
    # A long title wraps onto a second line of the label.
    assert "Lenovo ThinkCentre M700" in " ".join(text.split())

    page = reader(data).pages[0]
    images = page.images
    assert len(images) == 3
    urls = [f"https://cp.difronte.example/workshop/machines/DF-2026-00012{i}" for i in (3, 4, 5)]
    # Each QR code, read back pixel by pixel, is exactly the code for its machine's page.
    decoded = []
    for image in images:
        pil = image.image
        assert pil is not None
        size = pil.size[0] // 8 - 8
        decoded.append(qr_modules(pil, size))
    for url in urls:
        assert expected_modules(url) in decoded
    # The code is also a clickable link for whoever opens the PDF on screen.
    assert link_uris(data) == urls


def test_labels_fill_sheets_and_go_on_to_the_next() -> None:
    tags = asset_tags(2026, 1, 26)
    data = label_pdf(tags, BASE, created_at=CREATED)
    pages = reader(data).pages
    assert len(pages) == 2
    assert len(pages[0].images) == 24
    assert len(pages[1].images) == 2
    assert "DF-2026-000026" in pages[1].extract_text()


def test_label_pdf_is_deterministic() -> None:
    assert label_pdf(["DF-2026-000001"], BASE, created_at=CREATED) == label_pdf(
        ["DF-2026-000001"], BASE, created_at=CREATED
    )


def test_label_errors_name_the_item() -> None:
    with pytest.raises(ValueError, match=r"items\[1\]\.tag"):
        label_pdf(["DF-2026-000001", "PC-42"], BASE)
    with pytest.raises(ValueError, match="base_url"):
        label_pdf(["DF-2026-000001"], "ftp://x")
    with pytest.raises(ValueError, match="items"):
        label_pdf([], BASE)


def test_custom_sheet_geometry() -> None:
    roll = LabelSheet(
        columns=1,
        rows=1,
        label_width=62,
        label_height=29,
        page_width=62,
        page_height=29,
        margin_top=0,
    )
    data = label_pdf(asset_tags(2026, 1, 3), BASE, sheet=roll, created_at=CREATED)
    pages = reader(data).pages
    assert len(pages) == 3
    assert float(pages[0].mediabox.width) == pytest.approx(62 * 72 / 25.4, abs=0.01)
    with pytest.raises(ValueError, match="label_width"):
        LabelSheet(columns=4)


def test_labels_use_the_unicode_font_when_present() -> None:
    if documents.find_unicode_fonts() is None:
        pytest.skip("fonts-dejavu-core is not installed")
    data = label_pdf(["DF-2026-000001"], BASE, created_at=CREATED)
    assert any(name.startswith("DejaVu") for name in base_fonts(data))
    assert "ΔiFronte" in pdf_text(data)


def test_labels_fall_back_to_core_fonts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(documents, "FONT_DIRS", (tmp_path,))
    data = label_pdf(["DF-2026-000001"], BASE, created_at=CREATED)
    assert base_fonts(data) <= {"Helvetica", "Helvetica-Bold", "Helvetica-Oblique"}
    text = pdf_text(data)
    assert "DF-2026-000001" in text
    assert "DiFronte" in text
