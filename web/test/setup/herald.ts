// Builds and runs real herald servers for the tests: `go build` once per
// run (or HERALD_BIN, as scripts/test passes the binary it built), then one
// server per test file on a loopback port the system picks, with its own
// SQLite database and the demo data (alice, bob, carol, dave / herald-demo).

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const DEMO_PASSWORD = 'herald-demo';

/** The herald binary: HERALD_BIN, or built from this checkout into dir. */
export function buildHerald(dir: string): string {
  const given = process.env.HERALD_BIN;
  if (given) {
    if (!existsSync(given)) throw new Error(`HERALD_BIN=${given} does not exist`);
    return resolve(given);
  }
  const out = join(dir, 'herald');
  execFileSync('go', ['build', '-o', out, './cmd/herald'], { cwd: REPO, stdio: 'inherit' });
  return out;
}

/**
 * The port in herald's "herald listening" log line (text or JSON), which
 * names the address it is serving on.
 */
export function listeningPort(log: string): number | null {
  const m = /herald listening[^\n]*?http:\/\/127\.0\.0\.1:(\d+)/.exec(log);
  return m ? Number(m[1]) : null;
}

/** GET url answers 200 (node:http: a DOM test environment's fetch logs refused connections). */
function ready(url: string): Promise<boolean> {
  return new Promise((res) => {
    const req = httpGet(url, (r) => {
      r.resume();
      res(r.statusCode === 200);
    });
    req.on('error', () => res(false));
    req.setTimeout(2000, () => req.destroy());
  });
}

export interface HeraldOptions {
  bin: string;
  /** The port to serve on (default: one the system picks at the first start). */
  port?: number;
  /** Directory of the database and the JWT secret (default: a new temp dir). */
  dir?: string;
  args?: string[];
}

export class Herald {
  readonly bin: string;
  readonly dir: string;
  readonly args: string[];
  /** 0 until the first start: herald then listens on a port the system picks, kept for restarts. */
  private boundPort: number;
  private proc: ChildProcess | null = null;
  private log: string[] = [];
  private readonly ownDir: boolean;

  private constructor(o: HeraldOptions & { port: number; dir: string }, ownDir: boolean) {
    this.bin = o.bin;
    this.boundPort = o.port;
    this.dir = o.dir;
    this.args = o.args ?? [];
    this.ownDir = ownDir;
  }

  static async start(o: HeraldOptions): Promise<Herald> {
    const own = !o.dir;
    const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'herald-web-'));
    const h = new Herald({ ...o, dir, port: o.port ?? 0 }, own);
    await h.start();
    return h;
  }

  get port(): number {
    if (this.boundPort === 0) throw new Error('herald has not started yet: its port is not known');
    return this.boundPort;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsURL(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.proc !== null;
  }

  /**
   * Starts the server (again: same port, same database) and waits until it
   * answers. The first start takes a port the system picks (port 0) and reads
   * it from herald's log, so test runs and a herald already serving on this
   * machine never compete for one.
   */
  async start(): Promise<void> {
    if (this.proc) return;
    const args = [
      'serve',
      '--addr', `127.0.0.1:${this.boundPort}`,
      '--db', `sqlite:${join(this.dir, 'herald.db')}`,
      '--data-dir', this.dir,
      '--log-level', 'info', // the "herald listening" line names the port
      '--shutdown-grace', '2s',
      '--handshake-rate', '-1',
      '--max-conns-per-addr', '-1',
      '--registrations-per-hour', '-1',
      ...this.args,
    ];
    const p = spawn(this.bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = p;
    let early = ''; // what herald printed until its port is known
    const keep = (b: Buffer) => {
      const text = b.toString();
      this.log.push(text);
      if (this.log.length > 200) this.log.shift();
      if (this.boundPort === 0) {
        early += text;
        this.boundPort = listeningPort(early) ?? 0;
      }
    };
    p.stdout?.on('data', keep);
    p.stderr?.on('data', keep);
    let exited = false;
    p.once('exit', () => {
      exited = true;
      if (this.proc === p) this.proc = null;
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (exited) throw new Error(`herald exited on start:\n${this.log.join('')}`);
      if (this.boundPort !== 0 && (await ready(`${this.url}/readyz`))) return;
      if (Date.now() > deadline) throw new Error(`herald did not start:\n${this.log.join('')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops the server (SIGTERM: clients get 1012) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    if (!p) return;
    const done = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(signal);
    const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await done;
    clearTimeout(t);
    this.proc = null;
  }

  /** Stops the server and removes its files. */
  async dispose(): Promise<void> {
    await this.stop();
    if (this.ownDir) rmSync(this.dir, { recursive: true, force: true });
  }

  output(): string {
    return this.log.join('');
  }
}

/**
 * Sends a request again, after the Retry-After it was given, while herald
 * answers that it is busy (503: password checks run a few at a time, and a
 * busy machine runs them slowly), for up to a minute; returns the first
 * other answer. busy gives a busy answer's Retry-After ('' if none), and
 * null for any other answer.
 */
export async function retryWhileBusy<T>(send: () => Promise<T>, busy: (r: T) => string | null): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await send();
    const retryAfter = busy(r);
    if (retryAfter === null || Date.now() > deadline) return r;
    await new Promise((res) => setTimeout(res, (Number(retryAfter) || 1) * 1000));
  }
}

/** REST calls as a user, with bearer tokens. */
export class ApiUser {
  constructor(
    readonly base: string,
    readonly username: string,
    public access: string,
    readonly refresh: string,
    readonly id: number,
  ) {}

  static async signIn(base: string, username: string, password = DEMO_PASSWORD): Promise<ApiUser> {
    const r = await retryWhileBusy(
      () =>
        fetch(`${base}/api/auth/token/`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ username, password }),
        }),
      (r) => (r.status === 503 ? (r.headers.get('Retry-After') ?? '') : null),
    );
    if (!r.ok) throw new Error(`sign in ${username}: ${r.status} ${await r.text()}`);
    const t = (await r.json()) as { access: string; refresh: string };
    const me = (await (await fetch(`${base}/api/auth/me/`, { headers: { Authorization: `Bearer ${t.access}` } })).json()) as { id: number };
    return new ApiUser(base, username, t.access, t.refresh, me.id);
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await fetch(`${this.base}${path}`, {
      method,
      headers: { Authorization: `Bearer ${this.access}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!r.ok) throw new Error(`${method} ${path} as ${this.username}: ${r.status} ${await r.text()}`);
    return (r.status === 204 ? undefined : await r.json()) as T;
  }

  get<T>(path: string) {
    return this.call<T>('GET', path);
  }
  post<T>(path: string, body: unknown) {
    return this.call<T>('POST', path, body);
  }
  patch<T>(path: string, body: unknown) {
    return this.call<T>('PATCH', path, body);
  }
}
