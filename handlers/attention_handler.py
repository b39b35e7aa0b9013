"""TorchServe entry point for `<model>-attention`: JSON in, the attention contract out."""

from exformer.attention import explain_attention
from exformer.requests import parse_attention_request
from serving import ExplainerHandler


class AttentionHandler(ExplainerHandler):
    def parse(self, body, explain: bool):
        return parse_attention_request(body, self.loaded, self.settings)

    def explain_batch(self, requests):
        """Requests of a batch differ in length; each runs alone, so padding costs nothing."""
        results = []
        for request in requests:
            try:
                results.append(explain_attention(self.loaded, request, self.settings))
            except Exception as error:  # RequestError → 4xx, others → 500, per request
                results.append(error)
        return results

