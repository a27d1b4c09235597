"""The JavaScript libraries `kgpipe explore` serves, copied from installed packages into kgpipe/web/static/vendor/.

Nothing is copied into the repository and nothing is fetched from a CDN: Cytoscape.js comes from the npm registry
through the committed lock file in web/ (`npm ci`), plotly.min.js from the installed `plotly` pip package. Each copy
is checked against the sha256 recorded here, so a changed pin shows up as a failed check, not as a different page.
The Makefile's set-up runs `python -m kgpipe.web.vendor`, and building the package (setup.py's build_py) vendors
what is missing, so a wheel carries the files (package-data).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kgpipe.atomic import atomic_write_bytes
from kgpipe.errors import DependencyMissingError
from kgpipe.hashing import sha256_bytes

STATIC = Path(__file__).resolve().parent / "static"
VENDOR = STATIC / "vendor"
NPM_FOLDER = Path(__file__).resolve().parents[2] / "web"  # package.json + package-lock.json (a source checkout)
FETCH_COMMAND = "python -m kgpipe.web.vendor"


@dataclass(frozen=True)
class Vendored:
    """One vendored file: its name under static/vendor/, where it comes from and the bytes expected."""

    name: str
    registry: str  # "npm" or "pip"
    package: str
    version: str  # pinned in web/package-lock.json (npm) or constraints.txt (pip)
    path: str  # inside the installed package
    sha256: str


MANIFEST = (
    Vendored("cytoscape.min.js", "npm", "cytoscape", "3.35.0", "dist/cytoscape.min.js",
             "71fa9ebec21a7ca2c40cff6aacc30d1f6464e363662ad4b2c197e1adc770cd94"),
    Vendored("plotly.min.js", "pip", "plotly", "7.1.0", "package_data/plotly.min.js",
             "3b6e15d45dbb7fca5bd2094291e961ddc5472cd887009e6009a56dab668d721f"),
)


def missing(folder: Path = VENDOR) -> list[str]:
    """The vendored files absent from `folder` (empty when the app can serve everything)."""
    return [item.name for item in MANIFEST if not (folder / item.name).is_file()]


def missing_message(names: list[str]) -> str:
    """What a page or a log line says when vendored files are absent."""
    return (f"JavaScript not installed: {', '.join(names)} missing from {VENDOR}; "
            f"run `{FETCH_COMMAND}` (or `make setup`) in a kgpipe source checkout")


def _npm_source(item: Vendored) -> Path:
    return NPM_FOLDER / "node_modules" / item.package / item.path


def _pip_source(item: Vendored) -> Path:
    spec = importlib.util.find_spec(item.package)
    if spec is None or spec.origin is None:
        raise DependencyMissingError(f"the pip package '{item.package}' is not installed; {item.name} comes from it",
                                     hint=f"pip install -c constraints.txt '.[web]' (pins {item.package}=="
                                          f"{item.version})")
    return Path(spec.origin).parent / item.path


def npm_ci(folder: Path = NPM_FOLDER) -> None:
    """Install the locked npm packages into folder/node_modules (no install scripts run)."""
    npm = shutil.which("npm")
    if npm is None:
        raise DependencyMissingError("npm is not installed; Cytoscape.js is vendored from the npm registry",
                                     hint="install Node.js 20 and npm (apt-get install -y nodejs npm)")
    if not (folder / "package-lock.json").is_file():
        raise DependencyMissingError(f"{folder / 'package-lock.json'} not found: vendoring needs a kgpipe "
                                     "source checkout", hint="run it from the repository, then build the wheel")
    done = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=folder,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise DependencyMissingError(f"`npm ci` in {folder} failed:\n{done.stderr.strip()}",
                                     hint="check access to the npm registry, then run it again")


def _checked(item: Vendored, source: Path) -> bytes:
    data = source.read_bytes()
    if sha256_bytes(data) != item.sha256:
        installed = importlib.metadata.version(item.package) if item.registry == "pip" else "see web/package-lock.json"
        raise DependencyMissingError(
            f"{source}: sha256 {sha256_bytes(data)} is not the one kgpipe.web.vendor.MANIFEST records for "
            f"{item.package} {item.version} (installed: {installed})",
            hint=f"install the pinned version (pip install -c constraints.txt {item.package}=={item.version}, or "
                 "npm ci in web/), or update MANIFEST together with the pin")
    return data


def vendor(folder: Path = VENDOR) -> list[Path]:
    """Copy every MANIFEST file into `folder`, checked; runs `npm ci` first when the npm copy is absent or
    differs. Returns the files written."""
    written = []
    for item in MANIFEST:
        if item.registry == "npm":
            source = _npm_source(item)
            if not source.is_file() or sha256_bytes(source.read_bytes()) != item.sha256:
                npm_ci()
        else:
            source = _pip_source(item)
        if not source.is_file():
            raise DependencyMissingError(f"{source} not found: the {item.registry} package {item.package} "
                                         f"{item.version} should ship it", hint="reinstall that package")
        data = _checked(item, source)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / item.name
        if not target.is_file() or sha256_bytes(target.read_bytes()) != item.sha256:
            atomic_write_bytes(target, data)
        written.append(target)
    return written


def vendor_for_build(folder: Path = VENDOR) -> list[str]:
    """The build step's vendoring (setup.py): each MANIFEST file that is not in `folder` yet is copied where its
    source can be had; one that cannot (no npm, no plotly in the build environment) is named and skipped, so
    that building never fails for it (the explorer then says what to run; it serves plotly from the installed
    package). Returns what was done, one line per file."""
    lines = []
    for item in MANIFEST:
        target = folder / item.name
        if target.is_file() and sha256_bytes(target.read_bytes()) == item.sha256:
            continue
        try:
            source = _npm_source(item) if item.registry == "npm" else _pip_source(item)
            if item.registry == "npm" and (not source.is_file() or sha256_bytes(source.read_bytes()) != item.sha256):
                npm_ci()
            data = _checked(item, source)
        except (DependencyMissingError, OSError) as error:
            lines.append(f"kgpipe: {item.name} not vendored ({error}); the explorer asks for `{FETCH_COMMAND}`")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
        lines.append(f"kgpipe: vendored {target}")
    return lines


def main() -> None:
    try:
        for path in vendor():
            print(f"vendored {path}")
    except DependencyMissingError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(DependencyMissingError.exit_code) from error


if __name__ == "__main__":
    main()
