"""The HAProxy configuration in front of several game servers.

The template (``TEMPLATE``, rendered by ``render_haproxy_config``; ``deploy/haproxy.cfg`` in the
repository is it rendered for two servers, ``crowdlearning stack --print-config`` prints it for
any) says:

- ``balance leastconn``: a new player goes to the game server holding the fewest connections (a
  WebSocket is one long connection, so connections are players and spectators);
- WebSockets: HAProxy passes the ``Upgrade`` through and then tunnels the socket, idle for at most
  ``timeout tunnel`` (the game sends 20 frames a second, so only a dead socket is ever idle that
  long); ``timeout client-fin`` / ``server-fin`` close half-closed sockets quickly;
- stickiness: the first answer to a client carries the cookie ``cl_server`` naming the server
  (inserted by HAProxy, never seen by the game server: ``indirect``); a client that sends it back
  (a browser does, on the page's requests and on its WebSocket) reaches the same server again.
  A run lives in one server's memory and ends when its socket closes (docs/protocol.md), so what
  stickiness keeps together is a player's page, sockets and paid-run holds (``playing`` on that
  server) across reconnects; a server that is down is skipped (``option redispatch``);
- health checks: ``GET /healthz`` on each game server every ``check_interval_ms``, down after 2
  failures, up again after 2 successes; a refused connection is retried on another server;
- ``X-Forwarded-For`` (``option forwardfor``) and ``X-Forwarded-Proto``: the game servers name
  the balancer's address in ``CROWDLEARNING_SERVER_TRUSTED_PROXIES`` to believe them;
- ``X-CrowdLearning-Server`` on every answer (the WebSocket handshake's too): which server
  answered, for operators and tests.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from string import Template

__all__ = ["COOKIE", "SERVER_HEADER", "TEMPLATE", "Backend", "render_haproxy_config"]

COOKIE = "cl_server"
SERVER_HEADER = "X-CrowdLearning-Server"

TEMPLATE = Template("""\
# HAProxy in front of CrowdLearning game servers (rendered by crowdlearning.deploy.haproxy;
# `crowdlearning stack --print-config` prints it for other addresses). HAProxy >= 2.2.
global
    log stdout format raw local0 notice
    maxconn ${maxconn}
    hard-stop-after 10s

defaults
    mode http
    log global
    option httplog
    option dontlognull
    option forwardfor
    option redispatch
    retries 3
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 10s
    timeout tunnel 1h
    timeout client-fin 5s
    timeout server-fin 5s

frontend crowdlearning
    bind ${bind}
    http-request set-header X-Forwarded-Proto %[ssl_fc,iif(https,http)]
    default_backend game_servers

backend game_servers
    balance leastconn
    cookie ${cookie} insert indirect nocache httponly attr "SameSite=Lax"
    option httpchk
    http-check send meth GET uri /healthz
    http-check expect status 200
    http-response set-header ${server_header} %[srv_name]
    default-server check inter ${check_interval_ms}ms fastinter ${fast_interval_ms}ms fall 2 rise 2
${servers}
""")

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Backend:
    """One game server: its name (also the cookie's value) and address."""

    name: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def render_haproxy_config(backends: Sequence[Backend], *, bind_host: str = "127.0.0.1",
                          bind_port: int = 8080, check_interval_ms: int = 1000,
                          maxconn: int = 4096) -> str:
    """The configuration for ``backends`` behind ``bind_host:bind_port``."""
    if not backends:
        raise ValueError("at least one game server is needed")
    names = [b.name for b in backends]
    if len(set(names)) != len(names) or not all(_NAME.match(n) for n in names):
        raise ValueError(f"server names must be distinct letters, digits, '_.-': {names}")
    bind = Backend("bind", bind_host, bind_port).address
    servers = "\n".join(f"    server {b.name} {b.address} cookie {b.name}" for b in backends)
    return TEMPLATE.substitute(
        bind=bind, maxconn=maxconn, cookie=COOKIE, server_header=SERVER_HEADER,
        check_interval_ms=check_interval_ms, fast_interval_ms=max(100, check_interval_ms // 4),
        servers=servers)
