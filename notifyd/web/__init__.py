"""HTTP delivery: the only layer that knows aiohttp's server side."""
