"""TorchServe entry point for `<model>-gradients`: integrated and intermediate gradients.

`POST /predictions/<model>` answers in the request's `format`; `POST /explanations/<model>`
(TorchServe's explanations endpoint) always answers with the JSON summary.
"""

from exformer.contract.errors import RequestError
from exformer.contract.parsing import decode_body
from exformer.contract.requests import GradientsRequest
from exformer.explain.dispatch import explain_batch
from exformer.explain.responses import GradientsAnswer, details_response
from exformer.serving.handler import ExplainerHandler


class GradientsHandler(ExplainerHandler):
    request_model = GradientsRequest

    def parse(self, body, explain: bool):
        if explain:  # the explanations endpoint answers with the JSON summary (and its defaults)
            body = {**decode_body(body), "format": "json"}
        return super().parse(body, explain)

    def explain_batch(self, requests):
        """The batch's path points share the forward chunks (padded, with attention masks).
        An empty body asks for the model's details, as on an attention archive."""
        answers = iter(explain_batch(self.loaded, [r for r in requests if not r.details_only]))
        return [details_response(self.loaded) if r.details_only else next(answers) for r in requests]

    def encode(self, result, request):
        return result.body() if isinstance(result, GradientsAnswer) else super().encode(result, request)

    def as_json(self, result, request):
        """KServe's protocols carry JSON: the summary (and any per-step tensors asked for)."""
        if not isinstance(result, GradientsAnswer):
            return result
        if request.format != "json":
            raise RequestError("format", f"KServe's protocols answer JSON, not {request.format!r}; "
                                         "TorchServe's /predictions endpoint serves npz and torch-gzip")
        return result.to_json()
