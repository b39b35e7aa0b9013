"""The wire contract (v1): pydantic, orjson and numpy only, no torch (clients import it).

Every request and response as a pydantic model, the names they use, how a body is parsed
into a request or one `RequestError`, the archive settings, and the schema writer
(`python -m exformer.contract.schema`). These models are the one source of truth:
`docs/schema/exformer-v1.schema.json` is generated from them and the visualizer's
TypeScript types from that file.
"""

from . import responses, vocabulary
from .arrays import decode_array, decode_index_array, decode_maps, decode_rows
from .errors import RequestError, ServerError
from .parsing import decode_body, parse, request_error
from .requests import AttentionRequest, Generate, GradientsRequest, Request, TextRequest
from .responses import *  # noqa: F403  every response model
from .responses import relative_delta
from .settings import MAX_RESPONSE_BYTES, Settings
from .vocabulary import *  # noqa: F403  every name of the vocabulary

__all__ = [
    "decode_array",
    "decode_index_array",
    "decode_maps",
    "decode_rows",
    "RequestError",
    "ServerError",
    "decode_body",
    "parse",
    "request_error",
    "AttentionRequest",
    "Generate",
    "GradientsRequest",
    "Request",
    "TextRequest",
    "relative_delta",
    "MAX_RESPONSE_BYTES",
    "Settings",
    *responses.__all__,
    *vocabulary.__all__,
]
