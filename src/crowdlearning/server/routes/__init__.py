"""One router per resource: auth, game, wallet, league, models, watch (HTTP and WebSocket)."""
