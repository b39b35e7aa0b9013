"""TorchServe entry point for `<model>-gradients`: integrated and intermediate gradients.

`POST /predictions/<model>` answers in the request's `format`; `POST /explanations/<model>`
(TorchServe's explanations endpoint) always answers with the JSON summary.
"""

from exformer.gradients import explain_gradients
from exformer.requests import decode_body, parse_gradients_request
from serving import ExplainerHandler


class GradientsHandler(ExplainerHandler):
    def parse(self, body, explain: bool):
        if explain:  # the explanations endpoint answers with the JSON summary (and its defaults)
            body = {**decode_body(body), "format": "json"}
        return parse_gradients_request(body, self.loaded, self.settings)

    def explain_batch(self, requests):
        """The batch's path points share the forward chunks (padded, with attention masks)."""
        return explain_gradients(self.loaded, requests, self.settings)

    def encode(self, result, request):
        return result.body()
