"""Django's Redis cache with one redis-py client per connection pool and per process, not per operation.

Django's RedisCacheClient builds a `redis.Redis` object for every get and set; redis-py 8 fills its table of
response callbacks in each one (~0.2 ms of CPU, as much as the round trip). A `redis.Redis` is safe to share between
threads (it takes a connection from its pool per command), so this keeps one per pool.
"""

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.utils.functional import cached_property


class _Client(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._client(connection_pool=self._get_connection_pool(write))
        return client


# Django keeps its cache objects per thread *and* per asyncio context: under the ASGI app (lumiku/asgi.py) every
# request runs in a context of its own, so it would build a new cache object, with a new connection pool and a new
# Redis connection, per request. The clients (and their pools) are therefore kept per process, by configuration.
_clients: dict[tuple, _Client] = {}


class RedisCache(DjangoRedisCache):
    @cached_property
    def _cache(self):
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        client = _clients.get(key)
        if client is None:
            client = _clients.setdefault(key, _Client(self._servers, **self._options))
        return client
