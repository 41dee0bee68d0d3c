"""The live fleet dashboard: server-rendered pages kept current by /ws/connect/ events and the JSON API."""
