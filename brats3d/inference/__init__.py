"""Whole-scan inference: sliding windows over a scan, then probabilities to labels."""
