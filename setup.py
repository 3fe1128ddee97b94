"""Build hook: copy the top-level resources/ into the wheel as gwm_desktop/_resources.

The project's layout keeps resources/ (model, LPIPS weights, samples) at the top of the checkout;
a non-editable install must carry them, and ``gwm_desktop.resources`` finds them there. Everything
else about the package is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RESOURCES = Path(__file__).resolve().parent / "resources"


class BuildWithResources(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:  # an editable install reads resources/ from the checkout itself
            self.copy_tree(str(RESOURCES), str(Path(self.build_lib) / "gwm_desktop" / "_resources"))


setup(cmdclass={"build_py": BuildWithResources})
