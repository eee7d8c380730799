"""p4target/switch."""
