"""The articles' claims, one module per chapter: each claim beside the computation that checks it."""
