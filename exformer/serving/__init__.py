"""TorchServe glue: the handler base and its batch loop (`handler`), KServe's v1/v2 protocols
under TorchServe's envelopes (`kserve`), the handlers' Prometheus metrics (`metrics`), and the
fork server the workers are forked from (`forkserver`). Imports exformer.explain, core, contract.
"""
