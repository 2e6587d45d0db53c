"""Request-time packages: allow-listed names and versions, installed by a trusted
step outside any sandbox into a content-addressed cache, mounted read-only."""
