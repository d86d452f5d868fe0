"""The seeds' CampaignConsumer as far as group_send is concerned: connect
joins campaign_<id> with group_add, accepts and sends the campaign's data;
contribution_message sends {"type": "contribution", "data": …} to the
client, exactly as herald sends the same layer message to its own clients.
The seed serializes the campaign from its database, which this project has
not: campaign_data carries the id only. Messages from the client are not
handled (the seed's receive reads contributions and comments from the
database and group_sends them)."""
import json

from channels.generic.websocket import AsyncWebsocketConsumer


class CampaignConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.campaign_id = self.scope["url_route"]["kwargs"]["campaign_id"]
        self.room_group_name = f"campaign_{self.campaign_id}"

        # Join room group
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)

        await self.accept()

        await self.send(text_data=json.dumps({
            "type": "campaign_data",
            "data": {"id": int(self.campaign_id)},
        }))

    async def disconnect(self, close_code):
        # Leave room group
        await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    # Message senders
    async def contribution_message(self, event):
        await self.send(text_data=json.dumps({
            "type": "contribution",
            "data": event["data"],
        }))
