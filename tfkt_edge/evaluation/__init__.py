"""Beside the scoring path: how well a model agrees with labels (LDCTIQAC), and how its alerts do on whole series."""
