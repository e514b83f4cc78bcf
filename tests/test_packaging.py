"""The installed package and the source tree must hold the same modules (a non-editable install included)."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_wheel_holds_exactly_the_source_trees_modules(tmp_path):
    """What `pip install .` (and tox) installs: the wheel's tltf/ is the source folder tltf/, no more, no less."""
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("tltf-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = {name for name in archive.namelist() if name.endswith(".py")}
    source = {path.relative_to(ROOT).as_posix() for path in (ROOT / "tltf").rglob("*.py")}
    assert packaged == source
    assert "tltf/cli/main.py" in packaged


def test_the_cli_imports_from_the_source_folder(tmp_path):
    """A process with the project root first on its path (tox, a non-editable install run from the checkout)."""
    script = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); import tltf.cli.main; "
              "print(tltf.cli.main.__file__); print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    path, ray_modules = result.stdout.strip().splitlines()
    assert Path(path) == ROOT / "tltf" / "cli" / "main.py"
    assert ray_modules == "[]"  # Ray is imported by a study or a search only, never by tltf itself


def test_a_study_without_ray_says_what_to_install(monkeypatch):
    import pytest

    from tltf.errors import TltfError
    from tltf.study.executor import import_tune

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when Ray is not installed
    with pytest.raises(TltfError, match=r"Ray Tune, which is not installed: pip install 'tltf\[study\]'"):
        import_tune()
