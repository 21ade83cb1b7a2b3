"""A pfBlockerNG "python mode"-style blocklist for Unbound's python module (benchmark peer).

pfSense schools run Unbound with pfBlockerNG, which in python mode keeps its list in a Python
structure inside Unbound, checks every new query against it and logs every reply through the
inplace reply callbacks. This is our own small module doing the same, so that bench/run.py can
measure filterdns against it: the list (one name per line, ``blocklist.txt`` in Unbound's
working directory) goes into a set; a query whose name or a parent domain is listed is
answered NXDOMAIN; every reply Unbound makes after resolving is logged as one line. Cache hits
never enter Python (as with pfBlockerNG), so they cost what plain Unbound's do.

Unbound provides the names used below (``MODULE_EVENT_NEW``, ``DNSMessage`` ...) to the
script it loads; this file is not importable on its own.
"""

BLOCKLIST = "blocklist.txt"
REPLY_LOG = "replies.log"

listed = set()
log_file = None


def init_standard(id, env):
    global log_file
    with open(BLOCKLIST, encoding="ascii") as lines:
        listed.update(line.strip().lower() for line in lines if line.strip())
    log_file = open(REPLY_LOG, "a", buffering=1 << 16, encoding="ascii")
    register_inplace_cb_reply(log_reply, env, id)  # noqa: F821 (provided by Unbound)
    return True


def deinit(id):
    if log_file is not None:
        log_file.close()
    return True


def inform_super(id, qstate, superqstate, qdata):
    return True


def is_listed(name):
    while name:
        if name in listed:
            return True
        dot = name.find(".")
        if dot < 0:
            return False
        name = name[dot + 1 :]
    return False


def operate(id, event, qstate, qdata):
    if event in (MODULE_EVENT_NEW, MODULE_EVENT_PASS):  # noqa: F821
        name = qstate.qinfo.qname_str.rstrip(".").lower()
        if is_listed(name):
            message = DNSMessage(qstate.qinfo.qname_str, qstate.qinfo.qtype, qstate.qinfo.qclass, PKT_QR | PKT_RA)  # noqa: F821
            if not message.set_return_msg(qstate):
                qstate.ext_state[id] = MODULE_ERROR  # noqa: F821
                return True
            qstate.return_rcode = RCODE_NXDOMAIN  # noqa: F821
            qstate.return_msg.rep.security = 2
            qstate.ext_state[id] = MODULE_FINISHED  # noqa: F821
            return True
        qstate.ext_state[id] = MODULE_WAIT_MODULE  # noqa: F821
        return True
    if event == MODULE_EVENT_MODDONE:  # noqa: F821
        qstate.ext_state[id] = MODULE_FINISHED  # noqa: F821
        return True
    qstate.ext_state[id] = MODULE_ERROR  # noqa: F821
    return True


def log_reply(qinfo, qstate, rep, rcode, edns, opt_list_out, region, **kwargs):
    log_file.write(f"{qinfo.qname_str} {qinfo.qtype_str} {rcode}\n")
    return True
