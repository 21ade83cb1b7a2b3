"""The typed configuration every part of filterdns is built from.

The loader (``loader.py`` and one reader per section in ``sections/``) turns YAML into these
frozen dataclasses and is the only place that knows about YAML and line numbers. The defaults
written here are the only ones: a key left out of the file takes its field's default below
(the readers ask ``yamlnodes.default_of``), and a ``Literal`` field's values are the only
ones its reader accepts. Everything else receives a
``Config`` and can trust it: addresses are parsed, durations are seconds, names are checked
against each other (a group that names an unknown category never gets this far).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

BlockMode = Literal["null_ip", "nxdomain", "refused", "blockpage"]
BLOCK_MODES: tuple[str, ...] = get_args(BlockMode)  # the one list: loader and console use it
YouTubeMode = Literal["strict", "moderate", "off"]
StoreBackend = Literal["sqlite", "postgres"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A host and port, e.g. ``127.0.0.1:5353`` or ``[::1]:5353``."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _private_networks() -> tuple[IPNetwork, ...]:
    """Loopback, RFC 1918, RFC 6598 (carrier-grade NAT), ULA and link-local: the networks a
    school resolver serves. Anyone else gets REFUSED, so a port left open to the internet
    does not become an open resolver for amplification attacks."""
    return tuple(
        ipaddress.ip_network(n)
        for n in (
            "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
            "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10",
        )
    )


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """Response rate limiting per client address (0 queries per second: off). Every
    ``slip``-th limited reply is sent truncated, so a real client retries over TCP while a
    spoofed flood gets nothing useful (the same idea as BIND's RRL slip)."""

    queries_per_second: float = 0.0
    burst: int = 200
    slip: int = 2


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Listeners and the limits that protect them."""

    listen: tuple[Endpoint, ...] = (Endpoint("127.0.0.1", 5353),)
    allow_networks: tuple[IPNetwork, ...] = field(default_factory=_private_networks)
    rate_limit: RateLimitConfig = RateLimitConfig()
    tcp_idle_timeout: float = 10.0
    tcp_max_connections: int = 1000
    tcp_max_per_client: int = 50
    # RFC 8482: "minimal" answers ANY with one synthesised HINFO record; "refuse" with REFUSED.
    any_queries: Literal["minimal", "refuse"] = "minimal"
    max_pending_upstream: int = 10000
    udp_receive_buffer: int = 4 * 1024 * 1024
    uvloop: bool = True
    workers: int = 1
    # Set by the --workers supervisor for each worker; worker 0 also runs the console,
    # metrics, list downloads and retention.
    worker_index: int = 0
    # After binding, switch to this unprivileged user (when started as root).
    user: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamServerConfig:
    """One upstream resolver. ``protocol: tcp`` makes it TCP-only."""

    endpoint: Endpoint
    protocol: Literal["udp", "tcp"] = "udp"
    name: str = ""

    @property
    def label(self) -> str:
        """Name used in metrics and logs: the configured name or ``host:port``."""
        return self.name or str(self.endpoint)


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    servers: tuple[UpstreamServerConfig, ...] = ()
    timeout: float = 2.0
    # After this many consecutive failures a server is skipped until it has rested.
    failure_threshold: int = 3
    retry_after: float = 5.0


@dataclass(frozen=True, slots=True)
class CacheConfig:
    max_entries: int = 100_000
    min_ttl: int = 0
    max_ttl: int = 86_400
    negative_max_ttl: int = 3_600
    # RFC 8767 serve-stale: while every upstream fails, answer from expired entries up to
    # this many seconds past expiry (0: off), with a short TTL so clients ask again soon.
    serve_stale_max_age: float = 86_400.0
    stale_ttl: int = 30


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "info"
    format: Literal["text", "json"] = "text"
    # Optional JSON-lines file with one object per answered query.
    query_log: Path | None = None


@dataclass(frozen=True, slots=True)
class RecorderConfig:
    queue_size: int = 10_000


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """A category source: a local file or an http(s) URL, in a known list format."""

    location: str
    format: Literal["auto", "domains", "hosts", "adblock", "wildcard", "dnsmasq", "urls"] = "auto"
    name: str = ""  # a short label for people ("UT1 chat"); by default the file name

    @property
    def is_url(self) -> bool:
        return self.location.startswith(("http://", "https://"))

    @property
    def label(self) -> str:
        """What the console, logs and ``explain`` call this source."""
        return self.name or self.location.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class CategoryConfig:
    name: str
    description: str = ""
    sources: tuple[SourceConfig, ...] = ()
    # Domains listed inline in the config, for small curated categories.
    domains: tuple[str, ...] = ()
    # Blocked for every group at every hour; no allow list, override, review, essential
    # entry or policy revision can reach it (illegal content: the UK filtering standards
    # require that nobody, the administrator included, can switch that filtering off).
    locked: bool = False


@dataclass(frozen=True, slots=True)
class EssentialEntry:
    """A name a school cannot teach without (Teams, Classroom, Windows Update...): no
    category list blocks it or its subdomains, unless the listing is of a name below it.
    ``kind`` groups entries ("device-management"); ``source`` is the vendor page listing
    the host, "" for a school's own entries."""

    name: str
    service: str
    kind: str
    reason: str
    source: str = ""


@dataclass(frozen=True, slots=True)
class ListsConfig:
    refresh_interval: float = 86_400.0
    download_timeout: float = 60.0
    # A source that would block more than this share of the essential names is flagged.
    essential_alert_share: float = 0.02


@dataclass(frozen=True, slots=True)
class ScheduleException:
    """Dated exception: from ``start`` to ``end`` inclusive (ISO dates) the schedule uses
    ``windows`` instead of its weekly plan; an empty tuple means "no windows" (a holiday)."""

    name: str
    start: str
    end: str
    windows: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    """Named weekly windows in a time zone, e.g. lessons. Windows are ``("HH:MM", "HH:MM")``;
    an end earlier than the start crosses midnight into the next day."""

    name: str
    timezone: str
    weekly: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    exceptions: tuple[ScheduleException, ...] = ()


@dataclass(frozen=True, slots=True)
class ScheduledRule:
    """Inside the schedule's windows, block and/or allow these categories."""

    schedule: str
    block: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SafeSearchConfig:
    search: bool = False  # Google, Bing, DuckDuckGo
    youtube: YouTubeMode = "off"


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """A set of clients (a class, staff, library, guests) and the policy that applies to them."""

    name: str
    description: str = ""
    networks: tuple[IPNetwork, ...] = ()
    macs: tuple[str, ...] = ()  # normalised "aa:bb:cc:dd:ee:ff"
    block: tuple[str, ...] = ()  # categories blocked always
    rules: tuple[ScheduledRule, ...] = ()
    allow_domains: tuple[str, ...] = ()
    deny_domains: tuple[str, ...] = ()
    safe_search: SafeSearchConfig = SafeSearchConfig()
    block_mode: BlockMode | None = None  # None: the global default
    bypass_protection: bool = True
    essential: bool = True  # keep essential services reachable (opt out: false)
    site: str = ""  # the school (campus) the group belongs to, for district reports; "" = none


@dataclass(frozen=True, slots=True)
class BlockingConfig:
    mode: BlockMode = "null_ip"
    ttl: int = 60
    # Where the block page is served; used by mode "blockpage".
    page_ipv4: str | None = None
    page_ipv6: str | None = None


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """How to reach the store and how long to keep what it holds.

    ``path`` (SQLite) is relative to the data directory; by default ``filterdns.db`` in it.
    ``node`` names this resolver in every row it writes; by default the host name.
    ``buffer_limit`` and ``probe_interval`` tune ``StoreSink``'s behaviour while the store fails.
    """

    backend: StoreBackend = "sqlite"
    path: Path | None = None
    dsn: str = ""
    node: str = ""
    raw_events_days: int = 30
    aggregates_days: int = 400
    audit_days: int = 730
    home_days: int = 14  # events of take-home devices at home (policy/home.py): a shorter life
    busy_timeout: float = 5.0  # SQLite: how long a write waits for another writer's lock
    pool_size: int = 4  # PostgreSQL connections per node
    connect_timeout: float = 5.0  # PostgreSQL: giving up on connecting
    statement_timeout: float = 30.0  # PostgreSQL: giving up on one statement
    call_timeout: float = 10.0  # any one store call; past it the store counts as not answering
    insert_chunk: int = 5_000  # events per insert transaction
    buffer_limit: int = 50_000  # events kept in memory while the store fails
    probe_interval: float = 1.0  # while the store fails, how often to try writing again

    def __post_init__(self) -> None:
        if self.backend not in get_args(StoreBackend):
            raise ValueError(f"unknown store backend {self.backend!r}")
        if self.backend == "postgres" and not self.dsn:
            raise ValueError("the postgres store backend needs a dsn")
        for name in ("raw_events_days", "aggregates_days", "audit_days", "home_days", "pool_size",
                     "insert_chunk", "buffer_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"store {name} must be at least 1")



@dataclass(frozen=True, slots=True)
class WebSettings:
    """How the console treats sessions and logins (config section ``web``)."""

    secure_cookies: bool = False  # true under TLS: cookies get Secure and a __Host- name
    session_hours: float = 12.0  # absolute lifetime of a login
    idle_minutes: float = 120.0  # a session unused this long ends
    lock_after: int = 5  # failed logins in a row that lock an account...
    lock_minutes: float = 15.0  # ...for this long
    ip_failures: int = 20  # failed logins from one address within ip_window_minutes...
    ip_window_minutes: float = 10.0  # ...make that address wait


@dataclass(frozen=True, slots=True)
class WebConfig:
    """The staff console (``listen``: None turns it off) and the block page."""

    listen: Endpoint | None = Endpoint("127.0.0.1", 8080)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Where the block page is served; by default port 80 of blocking.page_ipv4/page_ipv6.
    blockpage_listen: Endpoint | None = None
    settings: WebSettings = WebSettings()
    # The console's address as people reach it, for links in mail ("https://filter.school.org").
    # "" = derived from listen, which only works for readers on the same network.
    public_url: str = ""

    @property
    def base_url(self) -> str:
        """``public_url`` without a trailing slash, or the URL of ``listen``."""
        if self.public_url:
            return self.public_url.rstrip("/")
        listen = self.listen or Endpoint("127.0.0.1", 8080)
        host = f"[{listen.host}]" if ":" in listen.host else listen.host
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{host}:{listen.port}"


@dataclass(frozen=True, slots=True)
class DohConfig:
    """DNS over HTTPS (config section ``doh``; no ``listen``, no DoH). Without a certificate
    the listener speaks plain HTTP, and only to ``trusted_proxies`` (a reverse proxy doing
    TLS), which are also the only peers whose ``X-Forwarded-For`` is believed."""

    listen: tuple[Endpoint, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    idle_timeout: float = 30.0
    max_connections: int = 1000
    max_per_client: int = 20  # connections from one address (or one proxy)


@dataclass(frozen=True, slots=True)
class DotConfig:
    """DNS over TLS (config section ``dot``). The certificate defaults to DoH's; the idle
    timeout and connection caps are the ``server`` section's TCP ones."""

    listen: tuple[Endpoint, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    """Pupils and devices behind DoH/DoT ids (config section ``identity``).

    ``hostname`` is the service's DNS name (``dns.school.example``): DoT clients name
    themselves as ``<id>.<hostname>``, and set-up help builds URLs from it. ``salt`` is the
    ``DnsOverHttpsSalt`` given to ChromeOS. ``unknown_group`` is for ids the roster lacks
    ("" = the strictest pupil group). ``roster`` defaults to ``roster.csv`` in the data
    directory. ``addresses`` are the service's IP addresses as devices reach them, for the
    set-up help (Windows registers a DoH template per DNS server address)."""

    hostname: str = ""
    salt: str = ""
    unknown_group: str = ""
    roster: Path | None = None
    addresses: tuple[str, ...] = ()


MailSecurity = Literal["none", "starttls", "tls"]


@dataclass(frozen=True, slots=True)
class MailConfig:
    """How filterdns sends mail (config section ``mail``): an SMTP relay, and how hard to
    retry. ``host`` "" means no mail: digests and alert mails wait in the outbox."""

    host: str = ""
    port: int = 587
    security: MailSecurity = "starttls"  # "tls": implicit TLS (port 465); "none": plain
    username: str = ""
    password: str = ""  # from mail.password or, better, mail.password_file
    sender: str = ""  # the From header (mail.from), e.g. "Riverside Filter <filter@school.org>"
    timeout: float = 30.0
    max_attempts: int = 8  # deliveries tried before a message is marked failed
    retry_initial: float = 60.0  # first wait after a failure; doubles each time...
    retry_max: float = 6 * 3600.0  # ...up to this

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True, slots=True)
class SafeguardingContact:
    """The person families may call when worried about a child (``reports.safeguarding_contact``),
    shown on the family pages and in the digest. ``role`` is in the school's words; left
    empty, families read their country's usual title for it."""

    name: str = ""
    role: str = ""
    email: str = ""
    phone: str = ""


@dataclass(frozen=True, slots=True)
class DataProtection:
    """Who answers for the data, named in the privacy notice families read
    (``reports.data_protection``): the controller (the school or its trust) and its data
    protection officer (LGPD: the encarregado)."""

    controller: str = ""
    officer: str = ""
    email: str = ""


@dataclass(frozen=True, slots=True)
class ReportsConfig:
    """Parent reports (config section ``reports``): the school's language, the privacy
    threshold and the weekly digest's send time, in the policy's time zone."""

    # The school's language (a tag of i18n.LANGUAGES): mail to parents who never chose one,
    # and family pages and the block page when the browser asks for none we have.
    language: str = "en"
    mask_below: int = 3  # counts under this show as "fewer than N"
    safeguarding_contact: SafeguardingContact = SafeguardingContact()
    data_protection: DataProtection = DataProtection()
    digest: bool = True  # send the weekly digest (needs mail)
    digest_day: str = "mon"  # a WEEKDAYS key
    digest_time: str = "07:30"  # HH:MM


AlertSubject = Literal["client", "group", "pupil"]


@dataclass(frozen=True, slots=True)
class AlertRule:
    """A safeguarding alert rule (policy section ``alerts.rules``): ``threshold`` matching
    blocked attempts within ``window`` seconds by one ``per`` (a client, a whole group, or a
    pupil named by the roster over DoH/DoT, wherever their device is)
    raise one alert per burst. Matching means a blocked lookup in one of ``categories``, or,
    with ``bypass``, any bypass attempt (bypass-category lookups and canary names)."""

    name: str
    categories: tuple[str, ...] = ()
    bypass: bool = False
    threshold: int = 5
    window: float = 600.0
    per: AlertSubject = "client"
    groups: tuple[str, ...] = ()  # () = every group
    email: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """What one resolver's config.yaml says about itself: listeners, upstreams, cache, logs,
    store, console, mail, encrypted DNS. Never part of a policy revision. ``source`` is the
    file it came from (None: the embedded default)."""

    server: ServerConfig = ServerConfig()
    upstream: UpstreamConfig = UpstreamConfig()
    cache: CacheConfig = CacheConfig()
    log: LogConfig = LogConfig()
    recorder: RecorderConfig = RecorderConfig()
    metrics_listen: Endpoint | None = None
    data_dir: Path = Path("data")
    # Internal networks list URLs and webhooks may reach; public addresses are always allowed.
    fetch_allow: tuple[IPNetwork, ...] = ()
    lists: ListsConfig = ListsConfig()
    store: StoreConfig = StoreConfig()
    web: WebConfig = WebConfig()
    mail: MailConfig = MailConfig()
    reports: ReportsConfig = ReportsConfig()
    doh: DohConfig = DohConfig()
    dot: DotConfig = DotConfig()
    identity: IdentityConfig = IdentityConfig()
    source: Path | None = None

    @property
    def roster_path(self) -> Path:
        return self.identity.roster or self.data_dir / "roster.csv"

    @property
    def folder(self) -> Path:
        """Where relative paths in the config and its policy start: the config file's
        folder, or the working directory for the embedded default."""
        return self.source.resolve().parent if self.source is not None else Path.cwd()

    @property
    def list_file_roots(self) -> tuple[Path, ...]:
        """The folders local list files must be inside: the config's folder and data_dir.
        A policy can be edited from the console; it must not read the server's other files."""
        return (self.folder, self.data_dir)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The policy: what the console edits and the store keeps as revisions, the same on
    every node (groups, schedules, categories, allow/deny lists, blocking, alert rules)."""

    trusted_forwarders: tuple[IPNetwork, ...] = ()
    timezone: str = "UTC"
    categories: tuple[CategoryConfig, ...] = ()
    schedules: tuple[ScheduleConfig, ...] = ()
    groups: tuple[GroupConfig, ...] = ()
    default_group: str = "default"
    allow_domains: tuple[str, ...] = ()
    deny_domains: tuple[str, ...] = ()
    blocking: BlockingConfig = BlockingConfig()
    # Categories a teacher's override can never allow (an admin's policy change still can).
    protected_categories: tuple[str, ...] = ("adult", "malware", "phishing", "self-harm")
    # Where a device is (policy/home.py): queries from these networks, the groups' networks
    # and the trusted forwarders are "at school"; DoH/DoT from anywhere else is "at home".
    school_networks: tuple[IPNetwork, ...] = ()
    # The school's floor at home: categories every group's home policy blocks (with the
    # protected and locked ones); lesson-time rules never apply at home.
    home_block: tuple[str, ...] = ("adult", "gambling", "malware", "phishing", "self-harm")
    # The catalogue's essential services followed by the school's ``essential_extra``.
    essential: tuple[EssentialEntry, ...] = ()
    alert_rules: tuple[AlertRule, ...] = ()

    @property
    def essential_names(self) -> tuple[str, ...]:
        return tuple(entry.name for entry in self.essential)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration: this node's settings and the policy in force. A new policy
    revision replaces ``policy`` and leaves ``node`` as it is."""

    node: NodeConfig = NodeConfig()
    policy: PolicyConfig = PolicyConfig()

    def with_node(self, **changes: Any) -> Config:
        """A copy with these node settings changed, e.g. ``with_node(data_dir=path)``."""
        return replace(self, node=replace(self.node, **changes))

    def with_policy(self, **changes: Any) -> Config:
        """A copy with these policy settings changed, e.g. ``with_policy(groups=...)``."""
        return replace(self, policy=replace(self.policy, **changes))


def inside(path: Path, roots: tuple[Path, ...]) -> bool:
    """Whether ``path``, with symlinks followed, is inside one of ``roots`` (also resolved)."""
    resolved = path.resolve()
    return any(resolved.is_relative_to(root.resolve()) for root in roots)
