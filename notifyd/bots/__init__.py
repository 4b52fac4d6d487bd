"""The BIM-bots protocol: the service list, the OAuth 2.0 provider, and the resource URL where
clients post a model and get the result, from the same service declarations as the JSON
notifications. Nothing here knows aiohttp; ``notifyd.web.bots`` serves it."""
