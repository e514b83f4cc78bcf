"""`tltf weights add`: the README's offline set-up in one command, on a fresh Keras cache in a fresh process."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import MOBILENET_WEIGHTS, PNEUMONIA_NPZ, needs_shared

ROOT = Path(__file__).resolve().parents[1]


def tltf_command(*args, keras_home: Path, cwd=ROOT):
    environment = {**os.environ, "KERAS_HOME": str(keras_home)}
    return subprocess.run([sys.executable, "-m", "tltf.cli.main", *map(str, args)], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=300)


@needs_shared(MOBILENET_WEIGHTS)
@needs_shared(PNEUMONIA_NPZ)
def test_weights_add_makes_imagenet_recipes_work_offline_and_is_idempotent(tmp_path):
    home = tmp_path / "keras-home"  # empty: as on a fresh machine
    before = tltf_command("validate", "recipes/pneumonia-mobilenet.yaml", "--set", "data.root=../shared/data",
                          keras_home=home)
    assert before.returncode == 2 and "are not in the Keras cache" in before.stderr

    added = tltf_command("weights", "add", MOBILENET_WEIGHTS, keras_home=home)
    assert added.returncode == 0, added.stderr[-2000:]
    assert "5 written, 0 already there" in added.stdout and "checked: loads as mobilenet_v2" in added.stdout
    cached = sorted(p.name for p in (home / "models").iterdir())
    assert cached == [f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_{size}_no_top.h5"
                      for size in (128, 160, 192, 224, 96)]
    assert all((home / "models" / name).read_bytes() == MOBILENET_WEIGHTS.read_bytes() for name in cached)

    after = tltf_command("validate", "recipes/pneumonia-mobilenet.yaml", "--set", "data.root=../shared/data",
                         keras_home=home)
    assert after.returncode == 0, after.stderr[-2000:]
    again = tltf_command("weights", "add", MOBILENET_WEIGHTS, keras_home=home)
    assert again.returncode == 0 and "0 written, 5 already there" in again.stdout


def test_a_file_that_is_not_the_weights_its_name_says_is_one_line(tmp_path):
    fake = tmp_path / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    fake.write_bytes(b"not an HDF5 file")
    result = tltf_command("weights", "add", fake, keras_home=tmp_path / "keras-home")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"tltf: error: {fake}: does not load as mobilenet_v2") and "nothing was added" in line
    assert list((tmp_path / "keras-home" / "models").iterdir()) == []
    missing = tltf_command("weights", "add", tmp_path / "nothing.h5", keras_home=tmp_path / "keras-home")
    assert missing.returncode == 2 and "nothing.h5: no such weights file" in missing.stderr
