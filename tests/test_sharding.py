"""Device plans for models split over several devices, and that a split model explains the same."""

import pytest
import torch
import transformers

from exformer.attention import explain_attention
from exformer.loading import load_model
from exformer.requests import parse_attention_request
from exformer.settings import Settings
from exformer.sharding import balanced_cuts, plan_device_map, tied_to, unit_bytes, units


def empty_model(model_dir):
    config = transformers.AutoConfig.from_pretrained(model_dir)
    import accelerate
    with accelerate.init_empty_weights():
        model = getattr(transformers, config.architectures[0])(config)
    model.tie_weights()
    return model


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


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_a_model_dispatched_through_a_multi_part_map_explains_identically(tiny_model_dir, family):
    model_dir = tiny_model_dir(family)
    plan = {name: "cpu" for name in plan_device_map(model_dir, [0, 1, 2])}
    whole = load_model(model_dir, family)
    split = load_model(model_dir, family, device_map=plan)
    body = {"text": "Sharding must not change a single number.", "top_k": 2}
    a = explain_attention(whole, parse_attention_request(body, whole, Settings()), Settings())
    b = explain_attention(split, parse_attention_request(body, split, Settings()), Settings())
    assert torch.equal(torch.tensor(a["attention"]["data"]), torch.tensor(b["attention"]["data"]))
    assert a["tokens"] == b["tokens"]


def test_a_dispatched_classifier_gives_identical_integrated_gradients(tiny_model_dir):
    from exformer.gradients import explain_gradients
    from exformer.requests import parse_gradients_request

    model_dir = tiny_model_dir("bert", classifier=True)
    plan = {name: "cpu" for name in plan_device_map(model_dir, [0, 1, 2])}
    results = []
    for loaded in (load_model(model_dir, "whole"), load_model(model_dir, "split", device_map=plan)):
        request = parse_gradients_request({"text": "Split it three ways.", "n_steps": 8}, loaded, Settings())
        results.append(explain_gradients(loaded, [request], Settings())[0])
    whole, split = results
    assert torch.equal(whole.path.integrated_gradients, split.path.integrated_gradients)
    assert whole.summary["convergence_delta"] == split.summary["convergence_delta"]
