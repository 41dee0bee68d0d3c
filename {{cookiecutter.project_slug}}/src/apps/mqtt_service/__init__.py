"""MQTT data paths: device messages in (handler service), commands out (publish queue + publisher service)."""
