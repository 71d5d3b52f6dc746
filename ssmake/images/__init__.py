"""Images: framework image lookup, Dockerfile builds, registries."""
