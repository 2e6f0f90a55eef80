"""Issue 11: the wheel carries templates/ and locales/, builds without a warning, and serves."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Built offline by setuptools' own PEP 517 backend, as any build frontend would call it
    (no pip needed: the lowest-versions venv has none)."""
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from setuptools import build_meta; build_meta.build_wheel(sys.argv[1])",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (built,) = out.glob("tiledesk_sso_bridge-*.whl")
    return built, build.stdout + build.stderr


def test_the_wheel_carries_every_template_catalogue_and_script(wheel: tuple[Path, str]) -> None:
    built, _output = wheel
    names = set(zipfile.ZipFile(built).namelist())
    for template in (REPO / "templates").rglob("*"):
        if template.is_file():
            wanted = "bridge/templates/" + template.relative_to(REPO / "templates").as_posix()
            assert wanted in names, wanted
    for po in (REPO / "locales").glob("*.po"):
        assert f"bridge/locales/{po.name}" in names, po.name
    assert "bridge/templates/static/bridge.js" in names
    assert not any(name.endswith(".mo") for name in names)
    assert not any(name.startswith(("tests/", "templates/", "locales/")) for name in names)


def test_the_build_prints_no_setuptools_warning(wheel: tuple[Path, str]) -> None:
    _built, output = wheel
    warnings = [line for line in output.splitlines() if "Warning" in line or "!!" in line]
    assert warnings == []


def test_an_installed_wheel_serves_its_pages_in_italian(
    wheel: tuple[Path, str], tmp_path: Path
) -> None:
    built, _output = wheel
    target = tmp_path / "site"
    # A pure-Python wheel installs by unpacking it into a site directory.
    zipfile.ZipFile(built).extractall(target)
    probe = textwrap.dedent(
        """
        import bridge, sys
        from starlette.testclient import TestClient
        from bridge.settings import parse_settings
        from bridge.web import create_app
        settings = parse_settings({
            "server": {"public_url": "http://127.0.0.1:8000"},
            "session": {"secret": "x" * 40},
            "tiledesk": {"project_id": "p1", "secret": "s"},
            "providers": {"dev": {"preset": "dev"}},
        })
        with TestClient(create_app(settings, warm_up=False)) as client:
            page = client.get("/", headers={"Accept-Language": "it"})
            css = client.get("/static/bridge.css")
        print(bridge.__file__)
        print(page.status_code, css.status_code)
        print("Accedi con Development identity provider" in page.text)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
    )
    assert run.returncode == 0, run.stderr
    where, statuses, italian = run.stdout.split("\n")[:3]
    assert where.startswith(str(target)), "the probe must import the installed wheel"
    assert statuses == "200 200"
    assert italian == "True"
