"""manage.py bench_send GROUP --count N --rate R [--index I --of S]
[--type T] [--step K] [--at NS --until NS]: herald bench's django
scenario's sender. Without --at, it prints "ready" once Django and the
layer are set up (and one group_send to a group nobody is in made) and reads "AT UNTIL" from its standard input, so that
several senders start together however long Python took to start. Message
k (for each k < N with k % S == I) is due at AT + k/R (unix nanoseconds)
and sent then, or at once when the sender is behind, with

    async_to_sync(channel_layer.group_send)(GROUP, {"type": T, "data": {"s": K, "n": k, "t": <now ns>}})

as the documents' signal handlers call it; "t" is the clock just before the
call, which the receiving clients subtract from theirs. Nothing is sent at
or after UNTIL. Prints one JSON line: {"sent", "planned", "behind_ns"},
behind_ns being how late the last send was against its schedule."""
import json
import sys
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "group_send N timestamped messages at a given rate"

    def add_arguments(self, parser):
        parser.add_argument("group")
        parser.add_argument("--type", default="contribution_message")
        parser.add_argument("--step", type=int, default=0)
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument("--rate", type=float, required=True)
        parser.add_argument("--at", type=int)
        parser.add_argument("--until", type=int)
        parser.add_argument("--index", type=int, default=0)
        parser.add_argument("--of", type=int, default=1)

    def handle(self, *args, **o):
        channel_layer = get_channel_layer()
        group_send = async_to_sync(channel_layer.group_send)
        at, until, rate = o["at"], o["until"], o["rate"]
        # A first group_send sets up what the first call of a process sets
        # up (imports, the layer's connection code) outside the
        # measurement; nobody is in that group.
        group_send("herald-bench-warmup", {"type": "warmup", "data": {}})
        if at is None or until is None:
            self.stdout.write("ready")
            self.stdout.flush()
            at, until = (int(v) for v in sys.stdin.readline().split())
        planned = len(range(o["index"], o["count"], o["of"]))
        sent = 0
        behind = 0
        for k in range(o["index"], o["count"], o["of"]):
            due = at + int(k * 1e9 / rate)
            now = time.time_ns()
            if due > now:
                time.sleep((due - now) / 1e9)
            now = time.time_ns()
            if now >= until:
                break
            behind = now - due
            group_send(o["group"], {"type": o["type"], "data": {"s": o["step"], "n": k, "t": now}})
            sent += 1
        self.stdout.write(json.dumps({"sent": sent, "planned": planned, "behind_ns": max(behind, 0)}))
