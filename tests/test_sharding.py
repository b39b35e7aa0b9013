"""Device plans for models split over several devices, and that a split model explains the same.

No test machine has two accelerators, so the split is exercised on CPU, where it takes care:

- transformers' `from_pretrained` (so `load_model(..., device_map=plan)`) dispatches an
  all-"cpu" map without any hook: the model runs as if never split, and a broken split would
  pass. So the split models here are loaded through `load_model`'s device_map path and then
  dispatched with `accelerate.dispatch_model(loaded.model, plan, force_hooks=True)`, which
  puts accelerate's AlignDevicesHook on every block of the plan.
- The "offloaded" split maps its middle block to "disk": those weights become meta tensors
  and only the block's hooks load them back, module by module, for its forward; a block
  whose hook did not run cannot compute at all. Blocks on "cpu" keep their weights, and their
  hooks move the activations they receive to their device.

The last tests break a split on purpose and check that the harness notices.
"""

import accelerate
import numpy as np
import pytest
import torch
import transformers
from accelerate.hooks import AlignDevicesHook
from accelerate.utils import offload_state_dict

from exformer import explain_attention, load_model
from exformer.contract import GradientsRequest
from exformer.core.options import PassOptions
from exformer.core.sharding import balanced_cuts, plan_device_map, tied_to, unit_bytes, units
from exformer.explain import parse_request
from exformer.explain.dispatch import explain_batch
from tiny_models import FAMILIES

TEXT = "Sharding must not change a single number."
# three blocks, as plan_device_map cuts them; "disk": the block's weights live in an offload folder
SPLITS = {"hooked": ["cpu", "cpu", "cpu"], "offloaded": ["cpu", "disk", "cpu"]}


pytestmark = pytest.mark.usefixtures("one_thread")


def empty_model(model_dir):
    config = transformers.AutoConfig.from_pretrained(model_dir)
    with accelerate.init_empty_weights():
        model = getattr(transformers, config.architectures[0])(config)
    model.tie_weights()
    return model


def dispatched(model_dir, devices: list, offload_dir, name: str = "split"):
    """(the model loaded through load_model's device_map path and dispatched with hooks, its plan)."""
    plan = plan_device_map(model_dir, devices)
    loaded = load_model(model_dir, name, device_map={unit: "cpu" for unit in plan})  # no hooks yet
    accelerate.dispatch_model(loaded.model, device_map=plan, offload_dir=offload_dir, force_hooks=True)
    return loaded, plan


def block_modules(model, plan: dict) -> dict[str, torch.nn.Module]:
    """The plan's units that are modules (a unit may also be a loose parameter)."""
    found = {}
    for unit in plan:
        try:
            found[unit] = model.get_submodule(unit)
        except AttributeError:
            pass
    return found


def unit_of(name: str, plan: dict) -> str:
    return next(unit for unit in plan if name == unit or name.startswith(unit + "."))


# --- the plan ------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["bert", "llama", "gpt2", "xlnet"])
@pytest.mark.parametrize("n_devices", [2, 3, 4])
def test_plan_places_every_parameter_in_contiguous_balanced_blocks(tiny_model_dir, family, n_devices):
    model_dir = tiny_model_dir(family)
    plan = plan_device_map(model_dir, list(range(n_devices)))
    model = empty_model(model_dir)
    for name, _ in model.named_parameters():
        assert any(name == m or name.startswith(m + ".") for m in plan), f"{name} has no device"
    names = units(model)
    assert list(plan) == names
    sizes = unit_bytes(model, names)
    tied = tied_to(model, names)  # these follow the unit they are tied to
    owned = [(plan[n], s) for n, s in zip(names, sizes) if n not in tied]
    devices = [d for d, _ in owned]
    assert devices == sorted(devices), "blocks are not contiguous"
    assert set(devices) == set(range(n_devices))
    per_device = [sum(s for d, s in owned if d == k) for k in range(n_devices)]
    assert max(per_device) <= sum(sizes) / n_devices + max(sizes)


@pytest.mark.parametrize("family", FAMILIES)
def test_units_sharing_a_tensor_are_placed_on_one_device(tiny_model_dir, family):
    """A tied LM head must live with its embeddings. (The CPU split tests below cannot see a
    tied head placed apart: accelerate re-ties it there and the numbers come out the same.)"""
    model_dir = tiny_model_dir(family)
    plan = plan_device_map(model_dir, [0, 1, 2])
    model = empty_model(model_dir)
    holders: dict[int, set] = {}
    for unit in plan:
        try:
            tensors = [*model.get_submodule(unit).parameters(), *model.get_submodule(unit).buffers()]
        except AttributeError:
            tensors = [model.get_parameter(unit)]
        for tensor in tensors:
            holders.setdefault(id(tensor), set()).add(unit)
    apart = [
        {unit: plan[unit] for unit in shared} for shared in holders.values() if len({plan[unit] for unit in shared}) > 1
    ]
    assert apart == []


def test_real_smollm2_plan_for_four_devices_is_balanced():
    from tiny_models import BPE

    plan = plan_device_map(BPE, [0, 1, 2, 3])
    model = empty_model(BPE)
    names = units(model)
    sizes = dict(zip(names, unit_bytes(model, names)))
    per_device = [sum(sizes[n] for n in names if plan[n] == k) for k in range(4)]
    layer = sizes["model.layers.0"]
    assert max(per_device) - min(per_device) <= sizes["model.embed_tokens"] + layer
    assert plan["lm_head"] == plan["model.embed_tokens"]  # tied weights stay together


def test_balanced_cuts_even_out_equal_units():
    assert balanced_cuts([1] * 8, 4) == [0, 2, 4, 6]
    assert balanced_cuts([10, 1, 1, 1, 1], 3) == [0, 1, 3]


# --- a dispatched model --------------------------------------------------------------------------


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("family", ["bert", "llama"])
def test_every_block_of_a_dispatched_model_runs_its_hook(tiny_model_dir, tmp_path, monkeypatch, family, split):
    loaded, plan = dispatched(tiny_model_dir(family), SPLITS[split], tmp_path)
    blocks = block_modules(loaded.model, plan)
    assert [unit for unit, module in blocks.items() if not hasattr(module, "_hf_hook")] == []
    for name, parameter in loaded.model.named_parameters():
        where = "meta" if plan[unit_of(name, plan)] == "disk" else "cpu"
        assert parameter.device.type == where, name
    ran = set()
    pre_forward = AlignDevicesHook.pre_forward

    def counted(self, module, *args, **kwargs):
        ran.add(id(module))
        return pre_forward(self, module, *args, **kwargs)

    monkeypatch.setattr(AlignDevicesHook, "pre_forward", counted)
    explain_attention(loaded, TEXT, top_k=2)
    assert [unit for unit, module in blocks.items() if id(module) not in ran] == []


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("family", ["bert", "llama"])
def test_a_dispatched_model_explains_attention_identically(tiny_model_dir, tmp_path, family, split):
    model_dir = tiny_model_dir(family)
    whole = load_model(model_dir, family)
    split_model, _ = dispatched(model_dir, SPLITS[split], tmp_path)
    a = explain_attention(whole, TEXT, top_k=2)
    b = explain_attention(split_model, TEXT, top_k=2)
    assert np.array_equal(a["attention"]["data"], b["attention"]["data"])
    assert a["tokens"] == b["tokens"]  # with each position's top-k predictions of the LM head


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("family, classifier", [("bert", True), ("llama", False)])
def test_a_dispatched_model_gives_identical_integrated_gradients(
    tiny_model_dir, tmp_path, monkeypatch, family, classifier, split
):
    # a dispatched model runs its whole last layer (accelerate's hooks run per layer), so the
    # whole model here does too: bit-identical needs the same matmul shapes
    model_dir = tiny_model_dir(family, classifier=classifier)
    results = []
    for loaded in (load_model(model_dir, "whole"), dispatched(model_dir, SPLITS[split], tmp_path)[0]):
        loaded.options = PassOptions(head_position_only=False)
        request = parse_request(loaded, GradientsRequest, {"text": "Split it three ways.", "n_steps": 8})
        results.append(explain_batch(loaded, [request])[0])
    whole, split_result = results
    assert torch.equal(whole.path.integrated_gradients, split_result.path.integrated_gradients)
    assert torch.equal(whole.path.intermediate_gradients, split_result.path.intermediate_gradients)
    assert whole.summary["convergence_delta"] == split_result.summary["convergence_delta"]


@pytest.mark.parametrize("split", SPLITS)
def test_a_dispatched_lm_explains_a_continuation_identically(tiny_model_dir, tmp_path, split):
    """The prefix-only backward swaps each linear layer's forward; under accelerate's hooks it
    must swap the hook's inner forward (`_old_forward`), so weights still arrive (offloaded ones
    from disk) and the rows come out bit-identical to the whole model's."""
    model_dir = tiny_model_dir("llama")
    results, forwards = [], []
    for loaded in (load_model(model_dir, "whole"), dispatched(model_dir, SPLITS[split], tmp_path)[0]):
        before = [dict(m.__dict__) for m in loaded.model.modules()]
        request = parse_request(
            loaded, GradientsRequest, {"text": "Split it", "continuation": " three ways.", "n_steps": 6}
        )
        results.append(explain_batch(loaded, [request])[0])
        forwards.append(
            [{k: d.get(k) for k in ("forward", "_old_forward")} for d in before]
            == [{k: m.__dict__.get(k) for k in ("forward", "_old_forward")} for m in loaded.model.modules()]
        )
    assert forwards == [True, True]  # every swapped forward put back
    whole, split_result = results
    assert torch.equal(whole.path.intermediate_gradients, split_result.path.intermediate_gradients)
    assert [t["attributions"] for t in whole.summary["targets"]] == [
        t["attributions"] for t in split_result.summary["targets"]
    ]


# --- broken splits are caught ----------------------------------------------------------------------


def test_a_plan_leaving_a_block_unmapped_is_refused(tiny_model_dir, tmp_path):
    model_dir = tiny_model_dir("bert")
    plan = plan_device_map(model_dir, SPLITS["offloaded"])
    del plan["bert.encoder.layer.1"]
    loaded = load_model(model_dir)
    with pytest.raises(ValueError, match="bert.encoder.layer.1"):
        accelerate.dispatch_model(loaded.model, device_map=plan, offload_dir=tmp_path, force_hooks=True)


def test_a_block_whose_weights_are_not_where_the_plan_says_fails_loudly(tiny_model_dir, tmp_path):
    """The offload folder already has an index (another plan's, offloading layer 1 only):
    accelerate reuses it, so the weights of layer 0, mapped to "disk", are nowhere."""
    model_dir = tiny_model_dir("bert")
    whole = load_model(model_dir)
    offload_state_dict(
        tmp_path,
        {name: tensor for name, tensor in whole.model.state_dict().items() if name.startswith("bert.encoder.layer.1.")},
    )
    plan = plan_device_map(model_dir, SPLITS["offloaded"])
    assert plan["bert.encoder.layer.0"] == "disk"
    split = load_model(model_dir)
    accelerate.dispatch_model(split.model, device_map=plan, offload_dir=tmp_path, force_hooks=True)
    with pytest.raises(KeyError, match="bert.encoder.layer.0"):
        explain_attention(split, TEXT)


def test_a_split_whose_hooks_load_other_weights_explains_differently(tiny_model_dir, tmp_path):
    """A stale offload folder (weights 5% off): every block runs, and only the comparison
    with the whole model shows the split is wrong."""
    model_dir = tiny_model_dir("bert")
    whole = load_model(model_dir)
    plan = plan_device_map(model_dir, SPLITS["offloaded"])
    offload_state_dict(
        tmp_path,
        {
            name: 1.05 * tensor
            for name, tensor in whole.model.state_dict().items()
            if plan[unit_of(name, plan)] == "disk"
        },
    )
    split = load_model(model_dir)
    accelerate.dispatch_model(split.model, device_map=plan, offload_dir=tmp_path, force_hooks=True)
    a = explain_attention(whole, TEXT)["attention"]["data"]
    b = explain_attention(split, TEXT)["attention"]["data"]
    assert a.shape == b.shape
    assert not np.array_equal(a, b)
