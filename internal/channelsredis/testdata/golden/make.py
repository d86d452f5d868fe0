#!/usr/bin/env python3
"""Writes the golden messages of herald's channels_redis tests with the
installed channels_redis's own serializers: NAME.core (what group_send
stores for the channel herald.quest_5 of RedisChannelLayer: random prefix,
then msgpack with __asgi_channel__), NAME.pubsub (what
RedisPubSubChannelLayer publishes) and NAME.json (the data as a consumer's
json.dumps sends it). Run: /usr/bin/python3 make.py"""
import asyncio
import json
import os

from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

MESSAGES = {
    "new_application": {
        "type": "new_application",
        "data": {"application_id": 7, "applicant": "bob", "quest_title": "Find the cat", "status": "pending"},
    },
    "application_update": {
        "type": "application_update",
        "data": {
            "application_id": 7,
            "quest_title": "Find the cat",
            "status": "approved",
            "updated_at": "2024-05-15T14:30:00.123456+00:00",
        },
    },
    "contribution": {
        "type": "contribution_message",
        "data": {
            "id": 123,
            "campaign": 456,
            "user": {"id": 789, "username": "contributor"},
            "amount": "100.00",
            "currency": "USD",
            "created_at": "2023-05-15T14:30:00Z",
        },
    },
    "extremes": {
        "type": "update_message",
        "data": {
            "big": 2**64 - 1,
            "small": -(2**63),
            "float": 1.5,
            "whole": 3.0,
            "tiny": 1e-7,
            "huge": 1e300,
            "none": None,
            "flags": [True, False],
            "text": "caf\u00e9 \u2603 \"quoted\" \\ \n\t\u0001 \u2028 \U0001f600",
            "empty": {},
            "nested": [[[]], {"a": [1, {"b": None}]}],
        },
    },
}


async def main():
    core = RedisChannelLayer(hosts=["redis://127.0.0.1:1"])
    pubsub = RedisPubSubChannelLayer(hosts=["redis://127.0.0.1:1"])
    here = os.path.dirname(os.path.abspath(__file__))
    for name, message in MESSAGES.items():
        stored = dict(message)
        stored["__asgi_channel__"] = ["herald.quest_5"]
        with open(os.path.join(here, name + ".core"), "wb") as f:
            f.write(core.serialize(stored))
        with open(os.path.join(here, name + ".pubsub"), "wb") as f:
            f.write(pubsub.serialize(message))
        with open(os.path.join(here, name + ".json"), "w") as f:
            f.write(json.dumps(message["data"]))


asyncio.run(main())
