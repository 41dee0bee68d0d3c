"""Device provisioning commands."""
