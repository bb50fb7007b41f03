"""The wheel (and so the Docker image) must carry every package, template and static file."""

import tomllib
from pathlib import Path

from app.resources import resource_dir

REPO = Path(__file__).resolve().parent.parent


def test_every_package_is_listed_in_pyproject() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "app").rglob("__init__.py")
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert config["package-dir"] == {"app.templates": "templates", "app.static": "static"}


def test_resources_are_found() -> None:
    assert (resource_dir("templates") / "base.html").is_file()
    assert (resource_dir("static") / "app.css").is_file()
