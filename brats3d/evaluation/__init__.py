"""Scoring segmentations: Dice, sensitivity, specificity and HD95 per class and per BraTS region."""
