"""Devices: MQTT identities with EMQX-compatible password hashes, their events, admin and provisioning."""
