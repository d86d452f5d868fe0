// A browser app using the installed package: compiled (never run) under
// strict mode with each module resolution (tsconfig.*.json). The lines
// expecting an error fail the check if the package's types resolve to `any`
// instead of its declarations.
import {
  AckRejectedError,
  HeraldClient,
  sessionAuth,
  sseTransport,
  tokenAuth,
  type ConnectionState,
  type GroupEvent,
  type ResyncInfo,
  type ServerMessage,
} from '@herald/client';
import {
  HeraldProvider,
  useCampaignRoom,
  useConnectionState,
  useGroup,
  usePresence,
  useWebSocket,
  type GroupState,
  type HeraldConfig,
} from '@herald/client/react';
import { createElement, type ReactElement } from 'react';

const room = new HeraldClient({ url: '/ws/campaign/42/', version: 2, auth: sessionAuth(), fallback: sseTransport() });
const offContribution = room.on('contribution', (m) => {
  const amount: string = m.data.amount;
  // @ts-expect-error a contribution's amount is a decimal string
  const wrong: number = m.data.amount;
  void [amount, wrong];
});
room.on('resync', (r: ResyncInfo) => {
  if (!r.recovered) void fetch('/api/campaigns/42/');
});
room.on('message', (m: ServerMessage) => void m.type);
room.connect();
const state: ConnectionState = room.state;
// @ts-expect-error state is a ConnectionState, not a number
const notANumber: number = room.state;
// @ts-expect-error not an event the client emits
room.on('no-such-event', () => {});
offContribution();

let access: string | null = null;
const seedClient = new HeraldClient({
  url: '/ws/applications/',
  auth: tokenAuth({ getAccess: () => access, getRefresh: () => null, setAccess: (a) => (access = a) }),
});

async function chat(): Promise<void> {
  const c = new HeraldClient({
    url: 'wss://herald.example.com/ws/',
    version: 2,
    getConnectionToken: async () => 'connection-jwt',
    getSubscriptionToken: async (group) => `subscription-jwt-for-${group}`,
  });
  c.on('event', (e: GroupEvent) => void [e.group, e.offset, e.epoch, e.data]);
  c.connect();
  await c.subscribe('chat:lobby');
  try {
    await c.publish('chat:lobby', 'message', { text: 'hello' });
  } catch (err) {
    if (err instanceof AckRejectedError) void err.code;
  }
  for (const [group, p] of c.positions) void [group, p.epoch, p.offset];
}

const config: HeraldConfig = { base: 'https://herald.example.com', getConnectionToken: async () => 'connection-jwt' };

function Lobby(): ReactElement {
  const lobby: GroupState = useGroup('chat:lobby', { onEvent: (e) => void e.data });
  const roomState = useCampaignRoom(42);
  const watching: number | null = usePresence(42);
  const ws = useWebSocket('/ws/campaign/42/');
  const connection: ConnectionState = useConnectionState(null);
  // @ts-expect-error isSubscribed is a boolean
  const wrong: string = lobby.isSubscribed;
  void [roomState.campaign?.title, watching, ws.isConnected, connection, wrong, lobby.publish('message', { text: 'hi' })];
  return createElement('p', null, lobby.lastEvent ? String(lobby.lastEvent.offset) : 'waiting');
}

export const app = createElement(HeraldProvider, { config, children: createElement(Lobby) });
void [state, notANumber, seedClient, chat];
