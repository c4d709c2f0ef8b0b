"""The zip parts of an Office Open XML package (.xlsx / .xlsm): read them, write them reproducibly, keep the ribbon.

openpyxl (``keep_vba=True``) keeps a workbook's VBA project and copies the parts it does not know, the ribbon
``customUI/customUI.xml`` among them, but it rewrites the package relationships (``_rels/.rels``) without the one
that points at the ribbon: Excel would then open the file without the pyxl_del tab. `restore_ribbon` puts the
relationship back after an openpyxl save; the build (xlsm/build.py) adds the ribbon with `add_ribbon`.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from xml.etree import ElementTree as ET

#: Package relationship types of a ribbon part: Office 2007+ (customUI.xml, as the xlwings add-ins ship it) and
#: the older spelling some tools write.
UI_RELATIONSHIP_TYPES = (
    "http://schemas.microsoft.com/office/2007/relationships/ui/extensibility",
    "http://schemas.microsoft.com/office/2006/relationships/ui/extensibility",
)
UI_RELATIONSHIP_TYPE = UI_RELATIONSHIP_TYPES[0]
CUSTOMUI_PART = "customUI/customUI.xml"
PACKAGE_RELS = "_rels/.rels"
CONTENT_TYPES = "[Content_Types].xml"
_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"


def read_parts(package_bytes: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(package_bytes)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def canonical_order(names: Iterable[str]) -> list[str]:
    """[Content_Types].xml, then _rels/.rels, then the other parts sorted by name."""
    first = [CONTENT_TYPES, PACKAGE_RELS]
    names = list(names)
    return [n for n in first if n in names] + sorted(n for n in names if n not in first)


def write_zip(parts: Mapping[str, bytes], *, stamp: datetime) -> bytes:
    """A zip whose bytes depend only on ``parts`` and ``stamp`` (and zlib's deflate output)."""
    date_time = stamp.astimezone(timezone.utc).timetuple()[:6]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name in canonical_order(parts):
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 0  # MS-DOS, as Office writes; ZipInfo's default depends on the OS
            info.external_attr = 0
            zf.writestr(info, parts[name], compresslevel=6)
    return out.getvalue()


def ribbon_relationships(parts: Mapping[str, bytes]) -> list[tuple[str, str]]:
    """``(relationship type, target part)`` of every ribbon relationship in ``_rels/.rels``."""
    if PACKAGE_RELS not in parts:
        return []
    rels = ET.fromstring(parts[PACKAGE_RELS])
    return [(el.get("Type"), el.get("Target", "").lstrip("/")) for el in rels.iter(f"{{{_REL_NS}}}Relationship")
            if el.get("Type") in UI_RELATIONSHIP_TYPES]


def _next_rid(rels_xml: str) -> str:
    ids = [int(n) for n in re.findall(r'\bId="rId(\d+)"', rels_xml)]
    return f"rId{max(ids, default=0) + 1}"


def add_ribbon(parts: Mapping[str, bytes], customui_xml: bytes, *, target: str = CUSTOMUI_PART,
               rel_type: str = UI_RELATIONSHIP_TYPE) -> dict[str, bytes]:
    """``parts`` with the ribbon part ``target`` and one package relationship of ``rel_type`` pointing at it
    (an older relationship of that type is replaced), and an XML content type for the part."""
    parts = dict(parts)
    parts[target] = customui_xml
    rels = parts[PACKAGE_RELS].decode("utf-8")
    rels = re.sub(r'<Relationship\b[^>]*Type="' + re.escape(rel_type) + r'"[^>]*/>', "", rels)
    if "</Relationships>" not in rels:
        raise ValueError(f"{PACKAGE_RELS} has no </Relationships>")
    rel = f'<Relationship Type="{rel_type}" Target="{target}" Id="{_next_rid(rels)}" />'
    parts[PACKAGE_RELS] = rels.replace("</Relationships>", rel + "</Relationships>").encode("utf-8")

    types = parts[CONTENT_TYPES].decode("utf-8")
    if not re.search(r'<Default\b[^>]*Extension="xml"', types) and f'PartName="/{target}"' not in types:
        types = types.replace("</Types>", f'<Override PartName="/{target}" ContentType="application/xml" /></Types>')
    parts[CONTENT_TYPES] = types.encode("utf-8")
    return parts


def restore_ribbon(saved: Mapping[str, bytes], original: Mapping[str, bytes]) -> dict[str, bytes]:
    """``saved`` (a package openpyxl wrote) with the ribbon parts and relationships of ``original`` back."""
    parts = dict(saved)
    for rel_type, target in ribbon_relationships(original):
        if target in original:
            parts = add_ribbon(parts, original[target], target=target, rel_type=rel_type)
    return parts
