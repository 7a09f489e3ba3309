"""The web side: JSON API, owner pages, health and metrics."""
