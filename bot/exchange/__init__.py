"""Exchange adapter on ccxt: REST (async) and ccxt.pro websockets, with retries and idempotent orders."""
