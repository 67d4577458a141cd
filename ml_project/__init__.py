"""Example scikit-learn project whose training and prediction the harness reproduces bit for bit.

Modules: config (constants), dataset (data + split + holdout export), tables
(CSV/JSONL in and out), features (preprocessing), model (estimator + canonical
hash), persistence (skops save/load), train and predict (the CLIs).
Importing this package imports nothing heavy.
"""
