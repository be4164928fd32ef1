"""pvwatch."""
