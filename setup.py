"""The package list, computed: the layers above the library keep their top-level folders (cli/,
deployments/, flows/, tasks/) but install inside the project's namespace as ``cnmflow.cli``,
``cnmflow.deployments``, ``cnmflow.flows`` and ``cnmflow.tasks``, never as generic top-level
names that would collide with another project's ``tasks`` in site-packages. Everything else about
the package is in pyproject.toml.
"""

from setuptools import find_packages, setup

#: Import name -> folder, for the layers above the library (imports point downward: cli ->
#: deployments -> flows -> tasks -> the library).
LAYER_FOLDERS = {
    "cnmflow.cli": "cli",
    "cnmflow.deployments": "deployments",
    "cnmflow.flows": "flows",
    "cnmflow.tasks": "tasks",
}

packages = find_packages(include=["cnmflow", "cnmflow.*"])
for name, folder in LAYER_FOLDERS.items():
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir={"cnmflow": "cnmflow", **LAYER_FOLDERS})
