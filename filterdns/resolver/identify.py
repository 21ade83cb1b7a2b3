"""Stage 2: who is asking. Maps a packet's source (or what a trusted forwarder says about the
real client) to a client address, MAC and group.

A router running dnsmasq with ``--add-mac --add-subnet=32,128`` forwards every pupil's query
from its own address; only the EDNS options it adds tell the pupils apart. Those options are
believed only from ``trusted_forwarders``: anyone else could claim to be a staff laptop.

Over DoH and DoT the client may also name itself (a URL path, a TLS server name); the
listener looks that id up in the roster and hands the resulting ``Identity`` in, which then
decides the group instead of the address; from outside the school's networks it is the
group's home policy (``<group>@home``, see ``policy/home.py``).
"""

from __future__ import annotations

from collections.abc import Collection

from filterdns.identity.roster import Identity
from filterdns.policy.groups import GroupResolver
from filterdns.policy.home import home_group, pupil_policy
from filterdns.resolver.access import NetworkSet
from filterdns.wire.query import ClientSubnet, Query


class Client:
    """The asking client as far as policy is concerned."""

    __slots__ = ("address", "mac", "group", "subnet", "identity", "policy")

    def __init__(
        self, address: str, mac: str | None, group: str, subnet: ClientSubnet | None, identity: str = "", policy: str = ""
    ):
        self.address = address
        self.mac = mac
        self.group = group
        # The engine's policy for this client: the group's, or a pupil's own home policy
        # when their parents tightened it (``policy/home.py``).
        self.policy = policy or group
        # The query's Client Subnet when a trusted forwarder sent it: the reply echoes it with
        # a full scope so the forwarder caches the answer per client. None otherwise.
        self.subnet = subnet
        # The pupil or device (``Identity.label``) an encrypted client named, "" otherwise.
        self.identity = identity


class ClientIdentifier:
    def __init__(self, groups: GroupResolver, trusted_forwarders: NetworkSet, school: NetworkSet | None = None):
        self._groups = groups
        self._trusted = trusted_forwarders
        # The school's networks (``policy.home.school_networks``); None: everywhere is school.
        self._school = school
        # Pupils whose parents set home settings: they get their own home policy.
        self.home_pupils: Collection[str] = frozenset()

    def group_for(self, address: str, mac: str | None = None) -> str:
        """The group of a client given directly (for ``filterdns explain`` and the console)."""
        return self._groups.group_for(address, mac)

    def identify(self, peer: str, query: Query, identity: Identity | None = None) -> Client:
        if identity is not None:
            # An encrypted client outside the school's networks is at home: its group's
            # home policy (``policy/home.py``) decides.
            if self._school is None or peer in self._school:
                return Client(peer, None, identity.group, None, identity.label)
            home = home_group(identity.group)
            policy = pupil_policy(identity.group, identity.label) if identity.label in self.home_pupils else home
            return Client(peer, None, home, None, identity.label, policy)
        if (query.client_subnet is None and query.mac is None) or peer not in self._trusted:
            return Client(peer, None, self._groups.group_for(peer), None)
        address = peer
        subnet = query.client_subnet
        if subnet is not None and subnet.is_single_host():
            address = subnet.address
        return Client(address, query.mac, self._groups.group_for(address, query.mac), subnet)
