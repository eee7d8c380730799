"""p4target/compiler."""
