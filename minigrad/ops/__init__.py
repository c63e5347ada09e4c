"""The differentiable ops, one theme per module; `minigrad.functional` re-exports them."""
