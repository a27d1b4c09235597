"""Where PyKEEN may write and what it runs on: PYSTOW_HOME inside the workspace, the training device,
and the versions recorded beside every result.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def use_workspace_pystow(root: Path | None = None) -> Path:
    """Point PYSTOW_HOME at <root>/.pystow unless the user chose a place; call before importing pykeen.

    PyKEEN creates its data and checkpoint folders under PYSTOW_HOME when it is imported, so a default
    of ~/.data would write outside the workspace (and fail on read-only homes).
    """
    chosen = os.environ.get("PYSTOW_HOME")
    if chosen:
        return Path(chosen)
    home = (root or Path.cwd()).resolve() / ".pystow"
    os.environ["PYSTOW_HOME"] = str(home)
    if "pykeen" in sys.modules:  # its folders were fixed at import; only later pystow calls see this
        log.debug("pykeen was imported before PYSTOW_HOME was set; its home folder may lie elsewhere")
    return home


def resolve_device(requested: str) -> str:
    """'auto' is CUDA when present, else CPU; anything else must be a device torch understands and this
    machine has (a missing one is an environment problem: DependencyMissingError)."""
    import torch

    from kgpipe.embed.config import ConfigError
    from kgpipe.errors import DependencyMissingError

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError("device", f"'{requested}' is not a torch device ({exc})",
                          hint="use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError("device", f"'{requested}' is a {device.type} device, which kgpipe does not train on",
                          hint="use auto, cpu, cuda or cuda:N")
    present = available_devices()
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise DependencyMissingError(
            f"params.device: '{requested}' asked for, but this machine has {', '.join(present)}",
            hint=f"use device: auto (CUDA when present, else CPU) or one of {', '.join(present)}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DependencyMissingError(f"params.device: '{requested}' asked for, but this machine has "
                                     f"{', '.join(present)}", hint="use device: auto or cpu")
    return str(device)


def available_devices() -> list[str]:
    """The devices torch can train on here: cpu, then cuda:0.. and mps where present."""
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def versions() -> dict[str, str]:
    """Versions that decide a trained model's numbers, recorded in metrics.json and the model config."""
    import platform

    import numpy
    import torch
    from pykeen.version import get_version

    from kgpipe import __version__

    return {"kgpipe": __version__, "pykeen": get_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}
