"""The test project's ASGI application, routed as the seeds' asgi.py routes
theirs: HTTP to Django (only GET /healthz here), WebSocket to the Channels
consumers of djangoapp.routing. herald bench's django scenario serves it
with Daphne to compare with herald on the same group_send:

    CHANNELS_REDIS_URL=redis://127.0.0.1:6379/0 CHANNELS_PREFIX=asgi \\
        daphne -b 127.0.0.1 -p 8001 djangoapp.asgi:application

The seeds wrap the router in AllowedHostsOriginValidator(AuthMiddlewareStack(…));
this project has no database, sessions or users, so it routes the consumer
directly."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangoapp.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from djangoapp.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": URLRouter(websocket_urlpatterns),
})
