"""Live events to browsers over WebSocket (Django Channels)."""
