"""Type compatibility through the shared type hierarchy."""

from kgpipe.vocab import DEFAULT_LABEL_MAP, SCHEMA, ancestors, compatible


def test_subtypes_are_compatible_with_their_supertypes_only() -> None:
    assert compatible(SCHEMA + "City", DEFAULT_LABEL_MAP["GPE"])
    assert compatible(DEFAULT_LABEL_MAP["ORG"], SCHEMA + "CollegeOrUniversity")
    assert not compatible(SCHEMA + "City", DEFAULT_LABEL_MAP["PERSON"])
    assert not compatible(SCHEMA + "City", SCHEMA + "Country")  # siblings are different things
    assert compatible(None, SCHEMA + "City") and compatible(SCHEMA + "Thing", SCHEMA + "Person")


def test_ancestors_stop_on_cycles() -> None:
    assert ancestors("a", {"a": "b", "b": "a"}) == ["a", "b"]
    assert ancestors(SCHEMA + "City") == [SCHEMA + "City", SCHEMA + "Place", SCHEMA + "Thing"]
