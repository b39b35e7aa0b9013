"""Every malformed attention request is one 4xx naming its field (in-process half of the table)."""

import pytest

from exformer.errors import RequestError
from exformer.loading import load_model
from exformer.requests import decode_body, parse_attention_request
from exformer.settings import Settings


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
    ({"text": "a", "mask": "2"}, "mask", 400),
    ({"text": "a", "top_k": 0}, "top_k", 400),
    ({"text": "a", "top_k": 10**9}, "top_k", 400),
    ({"text": "a", "top_k": 2.5}, "top_k", 400),
    ({"text": "a", "encoding": "xml"}, "encoding", 400),
    ({"text": "a", "text_pair": ["b"]}, "text_pair", 400),
    ({"text": "x" * 100_001}, "text", 413),
]


@pytest.mark.parametrize("body,field,code", BAD, ids=[f"{f}-{i}" for i, (_, f, _) in enumerate(BAD)])
def test_bad_request_is_a_4xx_naming_the_field(bert, body, field, code):
    with pytest.raises(RequestError) as err:
        parse_attention_request(body, bert, Settings())
    assert err.value.field == field and err.value.code == code
    assert err.value.to_json()["message"].startswith(field)


def test_unknown_field_suggests_the_close_one(bert):
    with pytest.raises(RequestError) as err:
        parse_attention_request({"text": "a", "top-k": 3}, bert, Settings())
    assert "did you mean 'top_k'" in err.value.message


def test_empty_body_is_a_details_request(bert):
    assert parse_attention_request(b"", bert, Settings()).text is None
    assert decode_body({}) == {}


def test_settings_reject_unknown_keys():
    with pytest.raises(ValueError, match="max_tokenz"):
        Settings.from_mapping({"max_tokenz": 3})
