"""Artifacts by role: every built-in output role is a known Role, held by one output per stage type; find_output
gives the path whatever the stage is called, and a clear error naming the role and the stage type to add."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kgpipe.config import load_pipeline
from kgpipe.errors import ArtifactError, InputError
from kgpipe.registry import get_stage_type
from kgpipe.roles import Role, existing_output, find_output, producers, stage_for
from kgpipe.stages import BUILTIN_STAGES


def test_builtin_roles_are_known_and_unique_per_type() -> None:
    seen: dict[str, str] = {}
    for name in BUILTIN_STAGES:
        roles = [spec.role for spec in get_stage_type(name).outputs if spec.role is not None]
        assert len(roles) == len(set(roles)), f"{name} tags two outputs with one role"
        for role in roles:
            assert role in set(Role), f"{name}: unknown role {role}"
            assert role not in seen, f"role {role} is made by both {seen.get(role)} and {name}"
            seen[role] = name
    assert seen[Role.ENTITIES] == "fuse" and seen[Role.MODEL] == "embed" and seen[Role.KNOWLEDGE_MODEL] == "inject"
    assert set(seen) == set(Role), f"roles no built-in stage makes: {set(Role) - set(seen)}"


def test_find_output_by_role_whatever_the_stage_is_called(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus/a.txt").write_text("Ada Lovelace was born in London.")
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"stages": {"read_texts": {"type": "ingest", "deps": {"corpus": "corpus"}}}}))
    pipe = load_pipeline(path)
    assert stage_for(pipe, "documents").name == "read_texts"
    expected = pipe.stages["read_texts"].outs["documents"]
    assert find_output(pipe, Role.DOCUMENTS, exists=False) == expected
    assert existing_output(pipe, Role.DOCUMENTS) is None
    with pytest.raises(ArtifactError, match=r"'documents' artifact\) does not exist yet") as not_run:
        find_output(pipe, Role.DOCUMENTS)
    assert "kgpipe run" in str(not_run.value.hint)

    with pytest.raises(InputError, match="no stage producing the 'entities' artifact") as missing:
        find_output(pipe, Role.ENTITIES)
    assert "add a stage of type 'fuse' (output fuse.entities)" in str(missing.value.hint)
    with pytest.raises(InputError, match="no artifact role 'entitys'") as typo:
        find_output(pipe, "entitys")
    assert "entities" in str(typo.value.hint)
    assert producers(Role.FUSION_REPORT) == ["fuse.report"]
