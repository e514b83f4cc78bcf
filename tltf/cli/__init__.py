"""The `tltf` command line (installed as tltf.cli): click commands only."""
