"""The only code that touches the operating system: commands, locks, podman, sockets."""
