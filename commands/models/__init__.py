"""Model versions in the registry: their cards, lineage, evaluations and validation; the
model-risk gate before an environment that requires validation; the serving alias."""
