"""Settings of the test project. The test names the layer in the
environment: CHANNELS_REDIS_URL (redis://host:port/db), CHANNELS_PREFIX
and CHANNELS_LAYER (core or pubsub)."""
import os

SECRET_KEY = "herald-tests-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["channels", "sender"]
DATABASES = {}

_BACKENDS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": _BACKENDS[os.environ.get("CHANNELS_LAYER", "core")],
        "CONFIG": {
            "hosts": [os.environ["CHANNELS_REDIS_URL"]],
            "prefix": os.environ.get("CHANNELS_PREFIX", "asgi"),
        },
    },
}
