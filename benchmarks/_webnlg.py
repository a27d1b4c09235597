"""Reading WebNLG (enriched v1.6 XML) for the benchmarks: entries with their DBpedia triples, and texts
with their entity references located as character spans in the text.

Usage: from _webnlg import read_webnlg; entries = read_webnlg(Path("../shared/data/webnlg/dev"))
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Reference:
    entity: str          # DBpedia resource name, e.g. "Abilene,_Texas"
    type: str            # name, description, pronoun
    text: str            # the surface form in the text
    start: int | None    # character span in the text, None when the form cannot be found verbatim
    end: int | None


@dataclass
class Text:
    entry_id: str
    lid: str
    category: str
    text: str
    triples: list[tuple[str, str, str]]
    references: list[Reference] = field(default_factory=list)


@dataclass
class Entry:
    eid: str
    category: str
    triples: list[tuple[str, str, str]]
    texts: list[Text]


def _triple(raw: str) -> tuple[str, str, str]:
    s, p, o = (part.strip() for part in raw.split("|"))
    return s, p, o


def _locate(text: str, forms: list[tuple[str, str, str]]) -> list[Reference]:
    """Find each reference's surface form in order of appearance, never reusing a character twice."""
    taken: list[tuple[int, int]] = []
    refs = []
    for entity, kind, form in forms:
        span = None
        for match in re.finditer(re.escape(form), text, flags=re.IGNORECASE):
            if form and all(match.end() <= a or match.start() >= b for a, b in taken):
                span = (match.start(), match.end())
                taken.append(span)
                break
        refs.append(Reference(entity, kind, form, *(span or (None, None))))
    return refs


def read_webnlg(folder: Path) -> list[Entry]:
    """Every entry of every XML file below folder (sorted by path, so the order is stable)."""
    entries = []
    for path in sorted(Path(folder).rglob("*.xml")):
        for entry in ET.parse(path).getroot().iter("entry"):
            triples = [_triple(t.text or "") for t in entry.iter("mtriple")]
            eid, category = f"{path.parent.name}/{path.stem}/{entry.get('eid')}", entry.get("category", "")
            texts = []
            for lex in entry.iter("lex"):
                text = (lex.findtext("text") or "").strip()
                if not text:
                    continue
                forms = [(r.get("entity", ""), r.get("type", ""), (r.text or "").strip())
                         for r in lex.iter("reference")]
                texts.append(Text(eid, lex.get("lid", ""), category, text, triples, _locate(text, forms)))
            entries.append(Entry(eid, category, triples, texts))
    return entries
