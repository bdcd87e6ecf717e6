"""pytest-benchmark timings of numpy_optim against torch.optim (see README: Performance)."""
