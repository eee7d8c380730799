"""p4target."""
