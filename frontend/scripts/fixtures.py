"""Write the unit tests' fixtures: real answers of the backend, not invented data.

    cd <repo> && PYTHONPATH=$PWD .venv/bin/python frontend/scripts/fixtures.py frontend/test/fixtures

generation.json: SmolLM2 explaining a continuation (plain; with a foil and words) and a
generation (test/generation.test.ts). attention.json: MiniLM's attention with rollout, as
float16, and with heads "mean"/"max" as top-k-per-row rows, with the values the Python client
decodes them to (test/longprompt.test.ts).
"""

import json
import sys
from pathlib import Path

from exformer import explain_attention, explain_gradients, load_model
from exformer.explain.encoding import json_bytes

GENERATION = {
    "continuation": {"text": "The capital of France is", "continuation": " Paris, the", "n_steps": 8},
    "foil_words": {"text": "The capital of France is", "continuation": " Paris, the", "foil": " London",
                   "aggregate": "word", "n_steps": 8},
    "generate": {"text": "The capital of France is", "generate": {"max_new_tokens": 3}, "n_steps": 8},
}
TEXT = "The cat sat on the mat."
ATTENTION = {
    "rollout_f16": {"text": TEXT, "rollout": True, "encoding": "float16-base64", "layers": [0, 1]},
    "sparse_mean_f16": {"text": TEXT, "heads": "mean", "top_k_per_row": 3, "rollout": True,
                        "encoding": "float16-base64", "layers": [0, 1]},
    "sparse_max_json": {"text": TEXT, "heads": "max", "top_k_per_row": 3, "encoding": "json", "layers": [1]},
}


def attention_fixtures() -> dict:
    model = load_model("build/models/minilm")
    out = {}
    for name, request in ATTENTION.items():
        result = explain_attention(model, request)
        decoded = {"rollout": result.rollout.round(4).tolist()} if request.get("rollout") else {}
        if result.attention.shape[1] == 1:  # heads combined: small enough to keep
            decoded["attention"] = result.attention.round(4).tolist()
        out[name] = {"request": request, "response": json.loads(json_bytes(dict(result))), "decoded": decoded}
    return out


def generation_fixtures() -> dict:
    model = load_model("build/models/smollm2")
    return {name: {"request": request, "response": json.loads(json_bytes(dict(explain_gradients(model, request))))}
            for name, request in GENERATION.items()}


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    (folder / "attention.json").write_text(json.dumps(attention_fixtures()))
    (folder / "generation.json").write_text(json.dumps(generation_fixtures(), indent=1))
    print(f"wrote {folder}/attention.json and generation.json")
