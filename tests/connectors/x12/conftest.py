"""A real redis-server of the tests' own, for the Redis control-number store."""

from tests.redis_fixture import redis_server, redis_url  # noqa: F401 - fixtures
