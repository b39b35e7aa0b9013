"""The engine: torch and transformers, no wire dicts; imports exformer.contract's names only.

Loading a model directory and its device plan (`loading`, `sharding`), tokens, baselines,
quadrature and adaptive rules, the one batched gradients pass (`integrated`, its plumbing in
`batching`) and the continuation pass (`continuation`), attention and rollout (`attention`),
words. The passes' speed-ups are named options of the loaded model (`options.PassOptions`).
"""
