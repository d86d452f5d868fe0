"""manage.py group_send FILE: sends each [group, message] of the JSON list
in FILE with group_send, one after the other, exactly as the documents'
signal handlers do."""
import json

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "group_send each [group, message] of a JSON file, in order"

    def add_arguments(self, parser):
        parser.add_argument("file")

    def handle(self, *args, **options):
        channel_layer = get_channel_layer()
        with open(options["file"]) as f:
            sends = json.load(f)
        for group, message in sends:
            async_to_sync(channel_layer.group_send)(group, message)
        self.stdout.write("sent %d" % len(sends))
