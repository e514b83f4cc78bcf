"""Decode throughput of DICOM against PNG: images per second through tltf's decoder, side by side.

PneumoniaMNIST test X-rays, enlarged to `--side` px (hospital X-rays are 1–3 thousand pixels a side; the
default 512 keeps the run short), written once as 8-bit PNG and as 12-bit DICOM (uncompressed, RLE and JPEG
2000 lossless), then decoded to `--size` px by `tltf.data.images.decode_files` (the path `tltf fit` and
`tltf predict` take: PNG in a parallel `tf.data` map, DICOM in a thread pool), the formats taking turns,
`--repeats` times. Prints each format's images/s per repeat and its ratio to PNG's in the same repeat (min,
median).

    python benchmarks/dicom_decode.py [--images 200] [--side 512] [--size 224] [--repeats 3] [--shared ../shared]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import tltf  # first: it imports TensorFlow without the native start-up notices

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def write_files(folder: Path, images: np.ndarray, side: int) -> dict:
    from pydicom.uid import JPEG2000Lossless, RLELossless
    from test_dicom import write_dicom  # the tests' writer: 12-bit values with a rescale and a window

    files = {"png": [], "dicom": [], "dicom-rle": [], "dicom-jpeg2000": []}
    for index, image in enumerate(images):
        large = np.asarray(Image.fromarray(image).resize((side, side), Image.BILINEAR))
        files["png"].append(folder / f"{index}.png")
        Image.fromarray(large).save(files["png"][-1])
        for name, syntax in (("dicom", None), ("dicom-rle", RLELossless), ("dicom-jpeg2000", JPEG2000Lossless)):
            files[name].append(write_dicom(folder / f"{index}-{name}.dcm", large, window=(128.0, 256.0),
                                           syntax=syntax))
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = parser.parse_args()
    tltf.log.logger.setLevel("WARNING")
    from tltf.data.images import decode_files

    with np.load(Path(args.shared) / "data" / "pneumoniamnist.npz") as data:
        images = data["test_images"][: args.images]
    with tempfile.TemporaryDirectory() as folder:
        files = write_files(Path(folder), images, args.side)
        print(f"decoding {len(images)} X-rays of {args.side} px to {args.size} px, {args.repeats} repeats", flush=True)
        rates = {name: [] for name in files}
        for repeat in range(args.repeats):
            for name, paths in files.items():
                start = time.perf_counter()
                decode_files(paths, args.size)
                rates[name].append(len(paths) / (time.perf_counter() - start))
            print(f"  repeat {repeat + 1}: " + ", ".join(f"{name} {rate[-1]:.0f}/s" for name, rate in rates.items()),
                  flush=True)
    for name in files:
        if name == "png":
            continue
        ratios = [dicom / png for dicom, png in zip(rates[name], rates["png"])]
        print(f"{name} / png images per second: min {min(ratios):.2f}, median {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
