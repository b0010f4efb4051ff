"""The imperative shell: providers, state store, SSH/rsync transport, executor, telemetry."""
