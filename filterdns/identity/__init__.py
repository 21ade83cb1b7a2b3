"""Who a client is beyond its address: the pupil roster and the ids that encrypted DNS clients
send (a DoH URL's path, a DoT server name's first label, ChromeOS's hashed identifiers)."""
