"""Index page, health check and the example background task."""
