"""Synthesis: one snapshot into many labelled images, as verifiable shards written by Ray workers."""
