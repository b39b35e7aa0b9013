"""TorchServe entry point for `<model>-attention`: JSON in, the attention contract out."""

from exformer.contract.requests import AttentionRequest
from exformer.explain.attention import attention_response
from exformer.serving.handler import ExplainerHandler


class AttentionHandler(ExplainerHandler):
    request_model = AttentionRequest

    def explain_batch(self, requests):
        """Requests of a batch differ in length; each runs alone, so padding costs nothing."""
        results = []
        for request in requests:
            try:
                results.append(attention_response(self.loaded, request))
            except Exception as error:  # RequestError → 4xx, others → 500, per request
                results.append(error)
        return results
