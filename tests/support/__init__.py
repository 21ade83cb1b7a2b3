"""Helpers shared by the test suite (fake upstream DNS server, ...)."""

import ipaddress

# Tests talk to servers on loopback only; the service fetches list URLs and calls webhooks
# on public addresses only unless its ``fetch_allow`` lists the network, so tests list these.
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
