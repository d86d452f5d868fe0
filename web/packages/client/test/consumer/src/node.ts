// A Node.js program needs no DOM types for "@herald/client" (only its React
// entry does): tsconfig.node-no-dom.json compiles this file with lib ES2022.
import { HeraldClient, tokenAuth, webSocketTransport, type WebSocketConstructor } from '@herald/client';
import { WebSocket } from 'ws';

let access: string | null = null;
export const client = new HeraldClient({
  url: 'ws://127.0.0.1:8000/ws/applications/',
  transport: webSocketTransport(WebSocket as unknown as WebSocketConstructor),
  auth: tokenAuth({ apiBase: 'http://127.0.0.1:8000', getAccess: () => access, getRefresh: () => null, setAccess: (a) => (access = a) }),
});
client.on('new_application', (m) => void m.data);
// @ts-expect-error state is a ConnectionState, not a number
export const wrong: number = client.state;
