#!/usr/bin/env python3
"""Write nvseg_bench/data/vista3d132_layout.json: every state-dict key of MONAI 1.4's vista3d132 with
its shape, so the wrapper can check a checkpoint's layout without importing monai.

    python scripts/make_vista3d132_layout.py
"""
import json
from pathlib import Path

import monai
from monai.networks.nets import vista3d132

OUT = Path(__file__).resolve().parents[1] / "nvseg_bench" / "data" / "vista3d132_layout.json"

if __name__ == "__main__":
    state = vista3d132(in_channels=1).state_dict()
    layout = {"monai": monai.__version__, "network": "monai.networks.nets.vista3d132(in_channels=1)",
              "keys": {k: list(v.shape) for k, v in state.items()}}
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in layout["keys"].items()]
    head = f'{{"monai": {json.dumps(layout["monai"])}, "network": {json.dumps(layout["network"])}, "keys": {{'
    OUT.write_text(head + "\n" + ",\n".join(lines) + "\n}}\n")
    print(f"wrote {OUT}: {len(layout['keys'])} keys")
