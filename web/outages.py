"""What a lost Redis looks like to the code that talks to it (channel layer, socket cap, cache).

redis-py raises its own ConnectionError and TimeoutError (not the built-in ones); a socket that
dies mid-read can surface as a plain OSError.
"""

import redis.exceptions

REDIS_AWAY: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)
