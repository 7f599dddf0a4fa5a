"""Datasets and the on-disk stores of curated images and generated clips."""
