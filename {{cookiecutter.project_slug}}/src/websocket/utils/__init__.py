"""Helpers for sending to WebSocket clients from anywhere in the backend."""
