"""Development tools shared by tests/ and bench/: tiny random models and the like, never used by the product.

Importing this package is cheap; torch, diffusers and transformers load inside the builders.
"""
