// A Node.js program using the installed package against a real herald:
// connects to /ws/ with an app's connection token, subscribes to a group
// with a subscription token (both from token callbacks), publishes to it
// and receives the event back, with its position. Prints that event as one
// JSON line and exits 0; exits 1 on any failure or after 20 s.
//
//   HERALD_URL=http://127.0.0.1:8000 APP_TOKEN_SECRET=… node out/run.js
import { createHmac } from 'node:crypto';
import { WebSocket } from 'ws';
import { HeraldClient, webSocketTransport, type GroupEvent, type WebSocketConstructor } from '@herald/client';

const base = process.env.HERALD_URL ?? '';
const secret = process.env.APP_TOKEN_SECRET ?? '';
if (!base || !secret) throw new Error('HERALD_URL and APP_TOKEN_SECRET are required');

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
/** An HS256 JWT, as the app's backend would sign it. */
function sign(claims: Record<string, unknown>): string {
  const signed = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ ...claims, exp: Math.floor(Date.now() / 1000) + 600 })}`;
  return `${signed}.${createHmac('sha256', secret).update(signed).digest('base64url')}`;
}

const deadline = setTimeout(() => {
  console.error('timed out');
  process.exit(1);
}, 20_000);

const group = 'chat:package';
const client = new HeraldClient({
  url: '/ws/',
  base,
  version: 2,
  // Node 20 has no global WebSocket: the `ws` package's.
  transport: webSocketTransport(WebSocket as unknown as WebSocketConstructor),
  getConnectionToken: async () => sign({ sub: 'package-user' }),
  getSubscriptionToken: async (g) => sign({ sub: 'package-user', channel: g }),
});
const received = new Promise<GroupEvent>((resolve) => {
  client.on('event', (e) => {
    if (e.group === group) resolve(e);
  });
});
client.connect();
await client.subscribe(group);
await client.publish(group, 'message', { text: 'hello from the package' });
const event = await received;
const position = client.positions.get(group);
if (!position || position.offset !== event.offset) throw new Error(`no position for ${group}: ${JSON.stringify(position)}`);

// The React entry loads too (react is installed next to the package).
const hooks = await import('@herald/client/react');
if (typeof hooks.useGroup !== 'function' || typeof hooks.HeraldProvider !== 'function') throw new Error('@herald/client/react: no hooks');

client.close();
clearTimeout(deadline);
console.log(JSON.stringify({ event, state: client.state }));
