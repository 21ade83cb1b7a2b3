"""Network listeners (UDP/TCP) and the service lifecycle."""
