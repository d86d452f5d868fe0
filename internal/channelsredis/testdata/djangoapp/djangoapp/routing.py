"""WebSocket routes, as in the seeds' routing.py."""
from django.urls import re_path

from djangoapp import consumers

websocket_urlpatterns = [
    re_path(r"ws/campaign/(?P<campaign_id>\d+)/$", consumers.CampaignConsumer.as_asgi()),
]
