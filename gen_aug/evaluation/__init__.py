"""Evaluation: whether synthetic images help a classifier on real test data."""
