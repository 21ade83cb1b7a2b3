# filterdns: content-filtering DNS resolver for school networks.
#
# Build:  docker build -t filterdns .
# Run:    docker run -d --name filterdns --network host \
#           -v /srv/filterdns/config.yaml:/etc/filterdns/config.yaml:ro \
#           -v filterdns-data:/data filterdns
#
# Use host networking (--network host): filterdns then sees each pupil's own address,
# which is what puts a device in its group. With port publishing (-p 53:53/udp) the
# packets go through Docker's NAT and, in many set-ups (rootless Docker, Docker
# Desktop, IPv6 clients, the userland proxy), through a proxy process, so the server
# sees Docker's gateway address (e.g. 172.17.0.1) instead: every device lands in one
# group and the query log shows one client. The README's Docker section says the same.
#
# The image's own config.yaml is the documented example; mount your school's file over
# it. The command line below makes filterdns listen on port 53 (IPv4; see the README for
# IPv6), serve the console on port 8080 and keep downloaded lists in /data whatever the
# file says. The console is plain HTTP on every address of the host unless the config
# sets web.tls_cert and web.tls_key.

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Everything the installed package needs: the code and the console's templates and static
# files (admin_ui). tests/test_docker_image.py installs exactly what these lines copy and
# starts the service from it.
COPY pyproject.toml README.md /src/
COPY filterdns /src/filterdns
COPY admin_ui /src/admin_ui
RUN pip install /src && rm -rf /src

# Port 53 is privileged. Rather than run as root, give the Python interpreter the
# single capability to bind low ports; the unprivileged user below then inherits
# it when it runs the `filterdns` script. (setcap needs the real file, not the
# python3 symlink.) libcap2-bin is removed again once the capability is set.
# This is what makes --network host work; do not combine it with
# --security-opt no-new-privileges, which ignores file capabilities.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcap2-bin \
    && setcap cap_net_bind_service=+ep "$(readlink -f /usr/local/bin/python3)" \
    && apt-get purge -y libcap2-bin \
    && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin filterdns \
    && mkdir -p /data \
    && chown filterdns:filterdns /data

# config.yaml names blocklists/catalogue.yaml relative to itself, so both live
# under /etc/filterdns.
COPY config.yaml /etc/filterdns/config.yaml
COPY blocklists /etc/filterdns/blocklists

USER filterdns
WORKDIR /data
VOLUME /data

# 53: DNS over UDP and TCP. 8080: the staff console (plain HTTP unless web.tls_* is set).
# 9153: Prometheus metrics. With --network host these are the host's own ports.
EXPOSE 53/udp 53/tcp 8080 9153

# Ask the server itself for healthcheck.filterdns. over UDP, with nothing but the
# standard library: healthy when a reply with our ID comes back (any answer code).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD python -c "import os,socket,sys; q=os.urandom(2)+bytes.fromhex('01000001000000000000')+b''.join(bytes([len(l)])+l for l in (b'healthcheck',b'filterdns'))+bytes.fromhex('0000010001'); s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(8); s.connect(('127.0.0.1',53)); s.send(q); r=s.recv(512); sys.exit(0 if r[:2]==q[:2] and r[2]&0x80 else 1)"

CMD ["filterdns", "serve", "-c", "/etc/filterdns/config.yaml", "--listen", "0.0.0.0:53", "--data-dir", "/data", \
     "--web-listen", "0.0.0.0:8080", "--metrics", "0.0.0.0:9153"]
