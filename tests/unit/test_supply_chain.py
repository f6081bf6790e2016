"""The dependency locks: every pin carries its sha256 hashes (so `pip --require-hashes`
refuses any other file), the image and `make` install the same lock, and this very
environment was installed from it."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)")
HASH = re.compile(r"^--hash=sha256:([0-9a-f]{64})$")


def read_lock(name: str) -> dict[str, tuple[str, list[str]]]:
    pins: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for line in (ROOT / name).read_text().splitlines():
        text = line.strip().rstrip("\\").strip()
        if m := PIN.match(text):
            current = canonicalize_name(m.group(1))
            pins[current] = (m.group(2), [])
        elif m := HASH.match(text):
            assert current is not None, f"{name}: a hash before any pin"
            pins[current][1].append(m.group(1))
        elif text and not text.startswith("#"):
            raise AssertionError(f"{name}: unexpected line {line!r}")
    return pins


def test_every_pin_has_hashes_and_every_dependency_is_pinned_in_range() -> None:
    runtime, dev = read_lock("requirements.lock"), read_lock("requirements-dev.lock")
    assert len(runtime) > 50 and len(dev) >= 5
    for lock in (runtime, dev):
        for name, (_, hashes) in lock.items():
            assert hashes, f"{name} has no hash"
    assert not set(runtime) & set(dev), "the dev lock must not re-pin runtime packages"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in runtime, f"{req.name} is not in requirements.lock"
        assert req.specifier.contains(runtime[name][0], prereleases=True), spec
    for spec in project["optional-dependencies"]["dev"]:
        name = canonicalize_name(Requirement(spec).name)
        assert name in runtime or name in dev, f"{spec} is in neither lock"
    for needed in ("rfc8785", "google-cloud-bigquery", "pydantic-settings"):
        assert needed in runtime


def test_this_environment_was_installed_from_the_locks() -> None:
    """`make` installs with --require-hashes from the two locks: every locked version is
    the one installed here, so the tests ran on exactly what the image ships."""
    locked = read_lock("requirements.lock") | read_lock("requirements-dev.lock")
    wrong = {}
    for name, (version, _) in locked.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if canonicalize_name(installed) != canonicalize_name(version):
            wrong[name] = (version, installed)
    assert wrong == {}


def test_the_image_and_make_install_the_same_lock_requiring_hashes() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(
        r"pip install [^\n]*--require-hashes --requirement requirements\.lock", dockerfile
    )
    assert "--no-deps" in dockerfile
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(
        r"pip install [^\n]*--require-hashes -r requirements\.lock -r requirements-dev\.lock",
        makefile,
    )
    assert re.search(r"pip install [^\n]*--no-deps -e \.", makefile)
