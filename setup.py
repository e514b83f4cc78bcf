# Metadata lives in setup.cfg. This file only maps the top-level cli/ folder
# (click commands, per the design card) to the import name tltf.cli, so that
# nothing named plain `cli` lands in site-packages.
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["tltf", "tltf.*"]) + ["tltf.cli"],
    package_dir={"tltf.cli": "cli"},
)
