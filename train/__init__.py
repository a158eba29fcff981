"""VoxLM train."""
