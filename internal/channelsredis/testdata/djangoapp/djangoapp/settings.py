"""Settings of the test project. The test names the layer in the
environment: CHANNELS_REDIS_URL (redis://host:port/db), CHANNELS_PREFIX
and CHANNELS_LAYER (core or pubsub). djangoapp.asgi serves the campaign
consumer with Daphne for herald bench's django scenario."""
import os

SECRET_KEY = "herald-tests-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["channels", "sender"]
DATABASES = {}
ROOT_URLCONF = "djangoapp.urls"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
ASGI_APPLICATION = "djangoapp.asgi.application"

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
