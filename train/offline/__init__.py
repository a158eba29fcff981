"""Offline training data at scale: many text-to-speech voices (`engines`) and acoustic augmentation (`augment`)."""
