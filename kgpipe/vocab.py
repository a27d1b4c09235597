"""The shared vocabulary of stages: spaCy labels -> KG types, pattern relations -> relation IRIs, and the
small type hierarchy that decides whether two types are compatible.

extract writes kg_type and relation_iri with these maps; fuse and inject use the same maps for type
compatibility, seed linking and edge overlap. Pipelines override them through params.
"""

from __future__ import annotations

from collections.abc import Mapping

SCHEMA = "http://schema.org/"
KGPIPE_RELATION = "http://kgpipe.org/relation/"

DEFAULT_LABEL_MAP: dict[str, str] = {
    "PERSON": SCHEMA + "Person",
    "ORG": SCHEMA + "Organization",
    "GPE": SCHEMA + "Place",
    "LOC": SCHEMA + "Place",
    "FAC": SCHEMA + "Place",
    "NORP": SCHEMA + "Organization",
    "EVENT": SCHEMA + "Event",
    "WORK_OF_ART": SCHEMA + "CreativeWork",
    "PRODUCT": SCHEMA + "Product",
    "LAW": SCHEMA + "Legislation",
    "LANGUAGE": SCHEMA + "Language",
    "AWARD": "http://kgpipe.org/sample/Award",
    # CoNLL04 labels, for models trained with `kgpipe ner train`
    "Peop": SCHEMA + "Person",
    "Org": SCHEMA + "Organization",
    "Loc": SCHEMA + "Place",
    "Other": SCHEMA + "Thing",
}

DEFAULT_RELATION_NAMES = (
    "works_for", "employed_by", "born_in", "lives_in", "located_in", "part_of", "founded_by", "member_of",
    "capital_of", "educated_at", "award_received", "spouse_of", "headquartered_in",
    "killed",  # the default pattern library's relation for CoNLL04's Kill
)
DEFAULT_RELATION_MAP: dict[str, str] = {name: KGPIPE_RELATION + name for name in DEFAULT_RELATION_NAMES}
# CoNLL04's relation labels, as a relation model trained on it (`kgpipe rel train`) names them: the same IRIs as the
# pattern relations they correspond to, so that fuse merges what patterns and the model both found
CONLL04_RELATIONS: dict[str, str] = {"Work_For": "works_for", "Live_In": "lives_in", "Located_In": "located_in",
                                     "OrgBased_In": "headquartered_in", "Kill": "killed"}
DEFAULT_RELATION_MAP.update({label: KGPIPE_RELATION + name for label, name in CONLL04_RELATIONS.items()})

# child -> parent (schema.org's own hierarchy, trimmed to what the label map and the demo KG use)
DEFAULT_TYPE_PARENTS: dict[str, str] = {
    SCHEMA + "City": SCHEMA + "Place",
    SCHEMA + "Country": SCHEMA + "Place",
    SCHEMA + "State": SCHEMA + "Place",
    SCHEMA + "AdministrativeArea": SCHEMA + "Place",
    SCHEMA + "CollegeOrUniversity": SCHEMA + "Organization",
    SCHEMA + "EducationalOrganization": SCHEMA + "Organization",
    SCHEMA + "ResearchOrganization": SCHEMA + "Organization",
    SCHEMA + "Corporation": SCHEMA + "Organization",
    SCHEMA + "Person": SCHEMA + "Thing",
    SCHEMA + "Organization": SCHEMA + "Thing",
    SCHEMA + "Place": SCHEMA + "Thing",
}


def ancestors(kg_type: str, parents: Mapping[str, str] = DEFAULT_TYPE_PARENTS) -> list[str]:
    """kg_type and every type above it, nearest first (cycles in a user hierarchy are cut)."""
    chain = [kg_type]
    while (parent := parents.get(chain[-1])) is not None and parent not in chain:
        chain.append(parent)
    return chain


def compatible(a: str | None, b: str | None, parents: Mapping[str, str] = DEFAULT_TYPE_PARENTS) -> bool:
    """Two types are compatible when unknown, or when one is (a subtype of) the other; Thing is no evidence."""
    if a is None or b is None or a == b:
        return True
    thing = SCHEMA + "Thing"
    if thing in (a, b):
        return True
    return b in ancestors(a, parents) or a in ancestors(b, parents)
