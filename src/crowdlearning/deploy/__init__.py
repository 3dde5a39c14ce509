"""Running several game servers behind a load balancer (``crowdlearning stack``).

- ``haproxy.py``: the HAProxy configuration (``render_haproxy_config``): least-connections
  balancing, WebSockets tunnelled, a player kept on one server by a cookie the balancer inserts,
  health checks on each game server's ``GET /healthz``, ``X-Forwarded-For`` set.
- ``stack.py``: the whole multi-server stack on one machine as separate processes (the local
  Hedera node when configured as local, the shared judge, N game servers, HAProxy in front),
  checked before it starts (PostgreSQL, Redis, haproxy) and stopped in reverse order.
- ``cli.py``: ``crowdlearning stack --servers 2 --port 8080``.

Nothing here imports the server, torch or the simulator: the processes it starts do.
"""

from __future__ import annotations
