"""exformer core: attention and gradient explanations for Hugging Face transformers.

Plain Python + torch; nothing here imports TorchServe, so the same functions serve the
handlers, the tests and a notebook.
"""
