# Metadata lives in setup.cfg. The package is the tltf/ folder as it is, tltf.cli included,
# so an installed tltf and the source tree have the same modules.
from setuptools import find_packages, setup

setup(packages=find_packages(include=["tltf", "tltf.*"]))
