"""Measuring on this machine: the live benchmark, the CPU and its vector units, the thread
tuning, the source model's run in torch and the evaluation text's divergence figures."""
