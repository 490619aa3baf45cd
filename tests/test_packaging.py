"""The built wheel and an editable install both expose the ``sse`` twistd plugin."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["setup.py", "pyproject.toml", "README.md", "txsse", "twisted"]
PIP = ["-m", "pip", "--disable-pip-version-check", "--quiet"]


def run(*command: str | Path, cwd: Path) -> str:
    """Run a command; fail the test with its output if it fails."""
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project, with a stale dropin.cache that must not be shipped."""
    copy = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "dropin.cache")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, copy / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, copy / name)
    (copy / "twisted" / "plugins" / "dropin.cache").write_bytes(b"stale")
    return copy


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv's python (pip reuses its cache, so dependencies are quick)."""
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=True)
    return env / "bin" / "python"


def plugins(python: Path, cwd: Path) -> str:
    """What ``twistd --help`` lists, run from a directory that is not the source."""
    return run(python.parent / "twistd", "--help", cwd=cwd)


def test_wheel_then_editable(source: Path, python: Path, tmp_path: Path) -> None:
    """``pip install`` of the wheel, then ``pip install -e``, each make ``twistd sse`` work."""
    run(sys.executable, *PIP, "wheel", "--no-deps", "-w", tmp_path, source, cwd=tmp_path)
    (wheel,) = tmp_path.glob("txsse-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "twisted/plugins/txsse_plugin.py" in names
    assert "txsse/py.typed" in names
    assert not {n for n in names if n.startswith("twisted/") and n.endswith("__init__.py")}
    assert not {n for n in names if "dropin.cache" in n or "/tests/" in n}

    run(python, *PIP, "install", wheel, cwd=tmp_path)
    site = Path(run(python, "-c", "import txsse; print(txsse.__file__)", cwd=tmp_path).strip())
    assert source not in site.parents  # the wheel's copy, not the source
    installed_plugin = site.parent.parent / "twisted" / "plugins" / "txsse_plugin.py"
    assert installed_plugin.exists()
    assert " sse " in plugins(python, tmp_path)
    assert "--state-file" in run(python.parent / "twistd", "sse", "--help", cwd=tmp_path)

    run(python, *PIP, "install", "-e", source, cwd=tmp_path)
    assert not installed_plugin.exists()  # the wheel's files are gone
    editable = run(python, "-c", "import txsse; print(txsse.__file__)", cwd=tmp_path).strip()
    assert Path(editable) == source / "txsse" / "__init__.py"
    assert " sse " in plugins(python, tmp_path)
    assert "--state-file" in run(python.parent / "twistd", "sse", "--help", cwd=tmp_path)
