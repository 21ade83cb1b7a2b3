"""DNS response codes (RFC 1035 4.1.1, RFC 6891 for BADVERS): the one home of these numbers.

Every layer that needs one imports it from here (wire/ sits below everything), so a code is
never restated as a bare number beside the module that parses or builds the header.
"""

from __future__ import annotations

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5
RCODE_BADVERS = 16  # extended rcode, carried partly in the OPT record
