"""One-off conversion of MTCNN's refinement networks (RNet, ONet) to the safetensors files that
`emoclip.faces.mtcnn_check` loads: ``mtcnn_onet.safetensors`` (shipped in ``emoclip/assets/``)
and ``mtcnn_rnet.safetensors`` (measured, not shipped: ``benchmarks.faces_mtcnn`` reads it from
``/tmp/faces-dumps/``).

The weights come from the ``facenet-pytorch==2.6.0`` wheel on PyPI (MIT licence, Copyright (c)
2019 Timothy Esler; ``facenet_pytorch/data/rnet.pt`` and ``onet.pt``, converted there from the
original MTCNN release). Unzip the wheel (do not install it: it pins an old torch) and run

    python scripts/convert_mtcnn.py /path/to/unzipped/wheel
    python scripts/convert_mtcnn.py /path/to/unzipped/wheel --nets rnet --out /tmp/faces-dumps

The ``.pt`` state dicts are read with ``torch.load(..., weights_only=True)`` (no code runs); only
the tensors the face/not-face score needs are kept (the box-regression and landmark heads are
dropped), as float32 under the same names.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

# The tensors each network's face probability needs (`emoclip.faces.mtcnn_check`).
KEEP = {
    "rnet": tuple("conv1 prelu1 conv2 prelu2 conv3 prelu3 dense4 prelu4 dense5_1".split()),
    "onet": tuple(
        "conv1 prelu1 conv2 prelu2 conv3 prelu3 conv4 prelu4 dense5 prelu5 dense6_1".split()
    ),
}


def convert(wheel: Path, out: Path, nets: list[str]) -> None:
    """Write ``mtcnn_<net>.safetensors`` of each of `nets` in `out` from the unzipped wheel at
    `wheel`."""
    import torch
    from safetensors.torch import save_file

    for net in nets:
        layers = KEEP[net]
        state = torch.load(wheel / "facenet_pytorch" / "data" / f"{net}.pt", weights_only=True)
        kept = {k: v.float().contiguous() for k, v in state.items() if k.split(".")[0] in layers}
        path = out / f"mtcnn_{net}.safetensors"
        save_file(kept, str(path), metadata={"source": "facenet-pytorch 2.6.0 (MIT)"})
        print(path, path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("wheel", type=Path, help="the unzipped facenet-pytorch 2.6.0 wheel")
    p.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "emoclip" / "assets")
    p.add_argument("--nets", nargs="+", default=["onet"], choices=sorted(KEEP))
    args = p.parse_args()
    convert(args.wheel, args.out, args.nets)


if __name__ == "__main__":
    main()
