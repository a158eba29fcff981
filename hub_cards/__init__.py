"""VoxLM hub_cards."""
