"""TorchServe entry point for `<model>-gradients`: integrated and intermediate gradients.

`POST /predictions/<model>` answers in the request's `format`; `POST /explanations/<model>`
(TorchServe's explanations endpoint) always answers with the JSON summary.
"""

from exformer.contract import GradientsRequest, decode_body
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
