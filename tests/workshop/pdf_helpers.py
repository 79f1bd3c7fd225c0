"""Reading the workshop's PDFs back in tests: text, fonts, images, links."""

from __future__ import annotations

import io
from typing import Any

from pypdf import PdfReader


def reader(data: bytes) -> PdfReader:
    """Parse a PDF, checking first that it looks like one."""
    assert data.startswith(b"%PDF-"), data[:16]
    return PdfReader(io.BytesIO(data))


def pdf_text(data: bytes) -> str:
    """All the text of a PDF, pages joined by newlines."""
    return "\n".join(page.extract_text() for page in reader(data).pages)


def base_fonts(data: bytes) -> set[str]:
    """The /BaseFont names used on any page (subset prefixes stripped)."""
    names: set[str] = set()
    for page in reader(data).pages:
        resources: Any = page["/Resources"]
        fonts: Any = resources.get_object().get("/Font", {})
        for ref in fonts.get_object().values():
            name = str(ref.get_object()["/BaseFont"]).lstrip("/")
            names.add(name.split("+", 1)[-1])
    return names


def link_uris(data: bytes) -> list[str]:
    """The URIs of the link annotations, page by page, in order."""
    uris: list[str] = []
    for page in reader(data).pages:
        for annot in page.get("/Annots") or []:
            action = annot.get_object().get("/A")
            if action is not None and "/URI" in action:
                uris.append(str(action["/URI"]))
    return uris
