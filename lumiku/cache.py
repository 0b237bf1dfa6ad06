"""Django's Redis cache with one redis-py client per connection pool instead of one per operation.

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


class RedisCache(DjangoRedisCache):
    @cached_property
    def _cache(self):
        return _Client(self._servers, **self._options)
