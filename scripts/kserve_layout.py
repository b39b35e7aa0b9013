"""Lay out KServe's storage directory for the TorchServe runtime from model_store/.

    bin/kserve-layout OUT [NAME ...]     (default: every archive in model_store/)

writes OUT/config/config.properties (deploy/kserve/config.properties plus `model_snapshot`,
which tells TorchServe what to load at start) and OUT/model-store/NAME.mar. Upload OUT to the
bucket/PVC the InferenceService's storageUri names. Workers, batching and the response timeout
in the snapshot are each archive's own model-config, so a model behaves as under bin/serve.
"""

import argparse
import json
import re
import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT_KEYS = {"minWorkers": 1, "maxWorkers": 1, "batchSize": 1, "maxBatchDelay": 100, "responseTimeout": 120}


def archive_config(mar: Path) -> dict:
    """The workers/batching settings of an archive's model-config (its top-level scalars)."""
    with zipfile.ZipFile(mar) as z:
        manifest = json.loads(z.read("MAR-INF/MANIFEST.json"))
        name = manifest["model"].get("configFile")
        text = z.read(name).decode() if name else ""
    found = dict(re.findall(r"^(\w+):\s*([0-9]+)\b", text, flags=re.M))
    return {key: int(found.get(key, default)) for key, default in SNAPSHOT_KEYS.items()}, manifest["model"]


def snapshot(archives: dict[str, Path]) -> dict:
    models = {}
    for name, mar in archives.items():
        config, model = archive_config(mar)
        models[name] = {model.get("modelVersion", "1.0"): {"defaultVersion": True, "marName": f"{name}.mar", **config}}
    return {"name": "startup.cfg", "modelCount": len(models), "models": models}


def lay_out(out: Path, archives: dict[str, Path]) -> Path:
    (out / "config").mkdir(parents=True, exist_ok=True)
    (out / "model-store").mkdir(parents=True, exist_ok=True)
    for name, mar in archives.items():
        shutil.copyfile(mar, out / "model-store" / f"{name}.mar")
    config = (ROOT / "deploy/kserve/config.properties").read_text()
    config += f"model_snapshot={json.dumps(snapshot(archives), separators=(',', ':'))}\n"
    (out / "config" / "config.properties").write_text(config)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the storage directory to write")
    parser.add_argument("names", nargs="*", help="archives in the model store (default: all)")
    parser.add_argument("--model-store", type=Path, default=ROOT / "model_store")
    args = parser.parse_args(argv)
    names = args.names or sorted(p.stem for p in args.model_store.glob("*.mar"))
    missing = [n for n in names if not (args.model_store / f"{n}.mar").is_file()]
    if missing or not names:
        print(f"no archive {missing or '*.mar'} in {args.model_store} (bin/setup builds them)", file=sys.stderr)
        return 2
    lay_out(args.out, {n: args.model_store / f"{n}.mar" for n in names})
    for path in sorted(args.out.rglob("*")):
        if path.is_file():
            print(f"{path}  {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
