"""Split any Hugging Face model's layers over several devices, in balanced contiguous blocks.

The plan is a `device_map` (module name → device) that transformers' `from_pretrained`
dispatches with accelerate's hooks, so no architecture needs a hand-written sharded copy
(the old int-gradients-server kept one per model family).
"""

from typing import Any

import torch


def units(model: torch.nn.Module) -> list[str]:
    """Module (or loose parameter) names in execution order, at the granularity the model
    says must not be split."""
    no_split = set(getattr(model, "_no_split_modules", None) or ())
    found = []

    def walk(module, prefix):
        join = lambda name: f"{prefix}.{name}" if prefix else name  # noqa: E731
        children = list(module.named_children())
        if type(module).__name__ in no_split or not children:
            found.append(prefix)
            return
        found.extend(join(p) for p, value in module._parameters.items() if value is not None)
        for name, child in children:
            walk(child, join(name))

    walk(model, "")
    return found


def _tensors(model, name: str) -> list[torch.Tensor]:
    try:
        module = model.get_submodule(name)
    except AttributeError:
        return [model.get_parameter(name)]
    return [*module.parameters(), *module.buffers()]


def unit_bytes(model: torch.nn.Module, names: list[str]) -> list[int]:
    """Parameter bytes of each unit; a tied parameter counts once, where it first appears."""
    seen, sizes = set(), []
    for name in names:
        size = 0
        for tensor in _tensors(model, name):
            if id(tensor) not in seen:
                seen.add(id(tensor))
                size += tensor.numel() * tensor.element_size()
        sizes.append(size)
    return sizes


def balanced_cuts(sizes: list[int], parts: int) -> list[int]:
    """Start index of each part: contiguous blocks minimising the sum of squared block bytes,
    which evens the blocks out (a plain min-max leaves all slack in one block)."""
    n = len(sizes)
    parts = min(parts, n)
    prefix = [0]
    for s in sizes:
        prefix.append(prefix[-1] + s)
    inf = float("inf")
    # best[k][i]: the smallest cost of the first i units cut into k non-empty blocks
    best = [[inf] * (n + 1) for _ in range(parts + 1)]
    cut = [[0] * (n + 1) for _ in range(parts + 1)]
    best[0][0] = 0
    for k in range(1, parts + 1):
        for i in range(k, n + 1):
            for j in range(k - 1, i):
                cost = best[k - 1][j] + (prefix[i] - prefix[j]) ** 2
                if cost < best[k][i]:
                    best[k][i], cut[k][i] = cost, j
    starts, i = [], n
    for k in range(parts, 0, -1):
        i = cut[k][i]
        starts.append(i)
    return starts[::-1]


def plan_device_map(config_or_dir, devices: list) -> dict[str, object]:
    """A device_map splitting the model into len(devices) blocks balanced by parameter bytes."""
    import accelerate  # only where a worker is given several devices
    import transformers

    config = config_or_dir
    if not isinstance(config, transformers.PretrainedConfig):
        config = transformers.AutoConfig.from_pretrained(config_or_dir)
    architecture = (config.architectures or ["AutoModel"])[0]
    model_class: Any = getattr(transformers, architecture, transformers.AutoModel)  # a PreTrainedModel class
    with accelerate.init_empty_weights():
        model = model_class.from_config(config) if model_class is transformers.AutoModel else model_class(config)
    model.tie_weights()
    names = units(model)
    starts = balanced_cuts(unit_bytes(model, names), len(devices))
    plan = {}
    for index, name in enumerate(names):
        part = max(p for p, start in enumerate(starts) if start <= index)
        plan[name] = devices[part]
    return _keep_tied_together(model, plan)


def tied_to(model, names: list[str]) -> dict[str, str]:
    """Units sharing a tensor with an earlier unit, directly or through others → the earliest.

    An MLM decoder shares its weight with the embeddings and its bias with a loose head bias:
    all three form one group, which must live on one device (the embeddings').
    """
    order = {name: i for i, name in enumerate(names)}
    root = {name: name for name in names}

    def find(name):
        while root[name] != name:
            root[name] = root[root[name]]
            name = root[name]
        return name

    holder: dict[int, str] = {}  # id of a tensor → the first unit holding it
    for name in names:
        for tensor in _tensors(model, name):
            a, b = find(holder.setdefault(id(tensor), name)), find(name)
            if a != b:
                first, later = (a, b) if order[a] < order[b] else (b, a)
                root[later] = first
    return {name: find(name) for name in names if find(name) != name}


def _keep_tied_together(model, plan: dict) -> dict:
    """A tied unit lives with the unit it is tied to, or the tie would break across devices."""
    for name, owner in tied_to(model, list(plan)).items():
        plan[name] = plan[owner]
    return plan
