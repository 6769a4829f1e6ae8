"""The asyncio parts that every asyncio front end of wsrs shares.

:mod:`wsrs.asyncio.messages` queues received messages, :mod:`wsrs.asyncio.writer` writes
frames in order with batching, :mod:`wsrs.asyncio.keepalive` sends keepalive pings and
compacts idle connections. The 4.0 API (:class:`wsrs.WebSocketCommonProtocol`) is built from
them over the Sans-I/O core (:mod:`wsrs.connection`, :mod:`wsrs.opening`, :mod:`wsrs.flow`).
"""
