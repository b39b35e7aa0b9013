"""Every malformed attention request is one 4xx naming its field (in-process half of the table)."""

import pytest

from exformer.contract import AttentionRequest, GradientsRequest, decode_body
from exformer.contract.errors import RequestError
from exformer.contract.settings import Settings
from exformer.core.loading import load_model
from exformer.explain import parse_request


@pytest.fixture(scope="module")
def bert(tiny_model_dir):
    return load_model(tiny_model_dir("bert"), "bert")


BAD = [
    (b"{not json", "body", 400),
    (b"\xff\xfe", "body", 400),
    ("[1, 2]", "body", 400),
    ({"text": ""}, "text", 400),
    ({"text": "   "}, "text", 400),
    ({"text": 5}, "text", 400),
    ({"layers": [0]}, "text", 400),
    ({"text": "a", "txet": "b"}, "txet", 400),
    ({"text": "a", "layers": [9]}, "layers", 400),
    ({"text": "a", "layers": "some"}, "layers", 400),
    ({"text": "a", "layers": []}, "layers", 400),
    ({"text": "a", "heads": [-1]}, "heads", 400),
    ({"text": "a", "heads": [0, 0]}, "heads", 400),
    ({"text": "a", "heads": [True]}, "heads", 400),
    ({"text": "a", "mask": [-1]}, "mask", 400),
    ({"text": "a", "layers": [0], "colour": 1}, "colour", 400),
    (b"[" * 50_000, "body", 400),
    ({"text": "a", "mask": "2"}, "mask", 400),
    ({"text": "a", "top_k": 0}, "top_k", 400),
    ({"text": "a", "top_k": 10**9}, "top_k", 400),
    ({"text": "a", "top_k": 2.5}, "top_k", 400),
    ({"text": "a", "encoding": "xml"}, "encoding", 400),
    ({"text": "a", "text_pair": ["b"]}, "text_pair", 400),
    ({"text": "x" * 100_001}, "text", 413),
    ({"text": None}, "text", 400),  # a client's unset variable: not the details request
    ({"text": "a", "layers": None}, "layers", 400),
    ({"text": "a", "encoding": None}, "encoding", 400),
    ({"text": "a", "rollout": None}, "rollout", 400),
]


def test_a_null_where_a_value_is_required_is_refused_naming_the_field(bert):
    error = parse_request(bert, AttentionRequest, {"text": None})
    assert (error.code, error.field) == (400, "text") and "must not be null" in error.message
    for field in ("baseline", "continuation", "generate", "foil", "method", "format", "n_steps"):
        error = parse_request(bert, GradientsRequest, {"text": "a", field: None})
        assert isinstance(error, RequestError) and error.field == field, (field, error)
    # where null is documented as "none" or "the default", it still is
    for body in ({"text_pair": None}, {"mask": None}, {"top_k": None}, {"top_k_per_row": None}):
        assert parse_request(bert, AttentionRequest, {"text": "a", **body}).text == "a", body


@pytest.mark.parametrize("body,field,code", BAD, ids=[f"{f}-{i}" for i, (_, f, _) in enumerate(BAD)])
def test_bad_request_is_a_4xx_naming_the_field(bert, body, field, code):
    error = parse_request(bert, AttentionRequest, body)
    assert isinstance(error, RequestError)
    assert error.field == field and error.code == code
    assert error.to_json()["message"].startswith(field)


def test_unknown_field_suggests_the_close_one(bert):
    assert "did you mean 'top_k'" in parse_request(bert, AttentionRequest, {"text": "a", "top-k": 3}).message


def test_empty_body_is_a_details_request(bert):
    assert parse_request(bert, AttentionRequest, b"").text is None
    assert decode_body({}) == {}


def test_a_body_nested_too_deep_is_a_400_naming_the_body(bert):
    error = parse_request(bert, AttentionRequest, b"[" * 50_000 + b"]" * 50_000)
    assert error.code == 400 and error.field == "body"


def test_a_negative_mask_index_says_indices_count_from_zero(bert):
    error = parse_request(bert, AttentionRequest, {"text": "a b", "mask": [-1]})
    assert error.field == "mask" and "count from 0" in error.message and "1073741823" not in error.message


def test_a_bool_is_not_an_integer(bert):
    assert parse_request(bert, AttentionRequest, {"text": "a", "top_k": True}).field == "top_k"


@pytest.mark.parametrize(
    "handler,name,message",
    [
        ({"max_tokenz": 3}, "max_tokenz", "unknown handler setting 'max_tokenz'"),
        ({"trim_heap_mb": "64MB"}, "trim_heap_mb", "handler setting 'trim_heap_mb'"),
        ({"dtype": "bf16"}, "dtype", "handler setting 'dtype'"),
        ({"max_n_steps": 0}, "max_n_steps", "handler setting 'max_n_steps'"),
    ],
)
def test_bad_handler_settings_are_refused_naming_the_setting(handler, name, message):
    with pytest.raises(ValueError) as err:
        Settings.from_mapping(handler)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
