"""setuptools hook (the metadata is in pyproject.toml): building the package first vendors the explorer's
JavaScript into kgpipe/web/static/vendor/ (kgpipe/web/vendor.py), so a wheel built from a fresh checkout carries
it. Where npm or the plotly package is missing the build goes on without those files, and the explorer's pages
say which command fetches them."""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithVendored(build_py):
    def run(self) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from kgpipe.web.vendor import vendor_for_build

        for line in vendor_for_build():
            print(line)
        super().run()


setup(cmdclass={"build_py": BuildWithVendored})
