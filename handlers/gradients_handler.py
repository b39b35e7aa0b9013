"""TorchServe entry point for `<model>-gradients`: integrated and intermediate gradients.

`POST /predictions/<model>` answers in the request's `format`; `POST /explanations/<model>`
(TorchServe's explanations endpoint) always answers with the JSON summary.
"""

from dataclasses import replace

from exformer.gradients import explain_gradients
from exformer.requests import parse_gradients_request
from serving import ExplainerHandler


class GradientsHandler(ExplainerHandler):
    def parse(self, body, explain: bool):
        request = parse_gradients_request(body, self.loaded, self.settings)
        return replace(request, format="json") if explain else request

    def explain_batch(self, requests):
        """The batch's path points share the forward chunks (padded, with attention masks)."""
        return explain_gradients(self.loaded, requests, self.settings)

    def encode(self, result, request):
        return result.body()
