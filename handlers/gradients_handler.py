"""TorchServe entry point for `<model>-gradients`: integrated and intermediate gradients.

`POST /predictions/<model>` answers in the request's `format`; `POST /explanations/<model>`
(TorchServe's explanations endpoint) always answers with the JSON summary.
"""

from exformer.contract import GradientsRequest, decode_body
from exformer.errors import RequestError
from exformer.gradients import GradientsResult, explain_batch
from exformer.serving import ExplainerHandler


class GradientsHandler(ExplainerHandler):
    request_model = GradientsRequest

    def parse(self, body, explain: bool):
        if explain:  # the explanations endpoint answers with the JSON summary (and its defaults)
            body = {**decode_body(body), "format": "json"}
        return super().parse(body, explain)

    def explain_batch(self, requests):
        """The batch's path points share the forward chunks (padded, with attention masks).
        An empty body asks for the model's details, as on an attention archive."""
        answers = iter(explain_batch(self.loaded, [r for r in requests if r.text is not None]))
        return [{"model": self.loaded.details()} if r.text is None else next(answers) for r in requests]

    def encode(self, result, request):
        return result.body() if isinstance(result, GradientsResult) else super().encode(result, request)

    def as_json(self, result, request):
        """KServe's protocols carry JSON: the summary (and any per-step tensors asked for)."""
        if not isinstance(result, GradientsResult):
            return result
        if request.format != "json":
            raise RequestError("format", f"KServe's protocols answer JSON, not {request.format!r}; "
                                         "TorchServe's /predictions endpoint serves npz and torch-gzip")
        return result.to_json()
