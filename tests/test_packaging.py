"""What the package says about itself is true: supported Python versions, licence, citation."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import isstad_plugin

REPO = Path(__file__).parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _pins() -> dict[str, str]:
    lines = (REPO / "requirements" / "constraints.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


def _floor() -> Version:
    (spec,) = SpecifierSet(PROJECT["requires-python"])
    assert spec.operator == ">="
    return Version(spec.version)


def test_requires_python_is_where_the_pinned_set_puts_it():
    """Every pinned, installed package accepts the floor's minor version; some reject the one below it."""
    floor = _floor()
    newest_of_floor = f"{floor.major}.{floor.minor}.99"
    below = f"{floor.major}.{floor.minor - 1}.99"
    rejecting_below = []
    for name in _pins():
        try:
            requires = metadata.distribution(name).metadata.get("Requires-Python")
        except metadata.PackageNotFoundError:
            continue
        if requires:
            assert newest_of_floor in SpecifierSet(requires), f"{name} needs Python {requires}"
            if below not in SpecifierSet(requires):
                rejecting_below.append(name)
    assert rejecting_below, f"nothing pinned needs {floor}: lower requires-python"


def test_documents_and_classifiers_state_the_same_versions():
    floor = _floor()
    classified = [Version(c.rsplit(" :: ", 1)[1]) for c in PROJECT["classifiers"] if re.search(r":: 3\.\d+$", c)]
    assert classified and min(classified) == floor
    old = f"{floor.major}.{floor.minor - 1}"
    for page in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        assert not re.search(rf"\b{re.escape(old)}[\u2013-]3\.", page.read_text()), f"{page} still names Python {old}"


def test_licence_and_citation():
    assert "Apache License" in (REPO / "LICENSE").read_text()[:200]
    assert PROJECT["license"]["text"] == "Apache-2.0"
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["version"] == isstad_plugin.__version__ == PROJECT["version"]
    assert citation["license"] == "Apache-2.0"
    assert "arXiv:2303.17354" in str(citation["preferred-citation"])
    assert "Paper" in PROJECT["urls"]


def test_every_public_name_is_imported_lazily_from_one_module():
    lazy = [name for names in isstad_plugin._LAZY.values() for name in names]
    assert sorted(lazy) == sorted(isstad_plugin.__all__)
