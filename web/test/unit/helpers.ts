import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import {
  HeraldClient,
  webSocketTransport,
  type ClientEventMap,
  type HeraldClientOptions,
  type Transport,
  type TransportConn,
  type WebSocketConstructor,
} from '@herald/client';
import { Herald } from '../setup/herald';

/** The `ws` package as the client's WebSocket (Node 20 has none built in). */
export const nodeTransport = webSocketTransport(WebSocket as unknown as WebSocketConstructor);

/**
 * nodeTransport whose current connection the test can cut, as a network
 * failure would (the client sees an unexpected close and reconnects).
 */
export function cuttableTransport() {
  let current: TransportConn | null = null;
  const t: Transport = {
    ...nodeTransport,
    connect(url, h) {
      current = nodeTransport.connect(url, h);
      return current;
    },
  };
  return { transport: t, cut: (code = 4000) => current?.close(code, 'cut by the test') };
}

/** nodeTransport that counts its connections not closed yet (open). */
export function countingTransport(): Transport & { readonly open: number } {
  let open = 0;
  return {
    ...nodeTransport,
    get open() {
      return open;
    },
    connect(url, h) {
      open++;
      return nodeTransport.connect(url, {
        ...h,
        onClose(code, reason, opened) {
          open--;
          h.onClose(code, reason, opened);
        },
      });
    },
  };
}

export function client(base: string, o: Partial<HeraldClientOptions> & { url: string }): HeraldClient {
  return new HeraldClient({ base, transport: nodeTransport, ...o });
}

/** Resolves with the next event of `type` that satisfies pred. */
export function next<K extends keyof ClientEventMap>(
  c: HeraldClient,
  type: K,
  pred: (ev: ClientEventMap[K]) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<ClientEventMap[K]> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      off();
      reject(new Error(`no ${String(type)} event within ${timeoutMs} ms (state ${c.state})`));
    }, timeoutMs);
    const off = c.on(type, (ev) => {
      if (!pred(ev)) return;
      clearTimeout(t);
      off();
      resolve(ev);
    });
  });
}

/** Records every event of the given types, in order. */
export function record(c: HeraldClient, ...types: (keyof ClientEventMap)[]) {
  const seen: { type: string; ev: unknown }[] = [];
  for (const t of types) c.on(t, (ev) => seen.push({ type: t, ev }));
  return seen;
}

export async function until(cond: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A secret for the app's tokens (herald wants at least 32 bytes). */
export const APP_SECRET = 'herald-web-tests-app-token-secret-0123456789';

/** The namespaces of an app's groups: chat:<name>, joined and published to with the app's tokens. */
export const APP_CONFIG = `[namespaces.chat]
subscribe = "token"
publish = "token"
`;

/** herald started with APP_CONFIG and APP_SECRET (the config file lives in its own temp dir). */
export async function startAppHerald(bin: string): Promise<{ h: Herald; dispose: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-app-config-'));
  const config = join(dir, 'herald.toml');
  writeFileSync(config, APP_CONFIG);
  const h = await Herald.start({ bin, args: ['--config', config, '--app-token-secret', APP_SECRET] });
  return {
    h,
    dispose: async () => {
      await h.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** An HS256 JWT over claims, signed as the app's backend would. */
export function mintToken(claims: Record<string, unknown>, secret = APP_SECRET): string {
  const signed = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(claims)}`;
  return `${signed}.${createHmac('sha256', secret).update(signed).digest('base64url')}`;
}

/** Seconds since the epoch, as JWT times are. */
export const nowSec = () => Math.floor(Date.now() / 1000);
