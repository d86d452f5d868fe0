// Pages built from test/fixtures/seed/ (the seeds' hooks, copied verbatim)
// and served as the seeds' React dev server would: from an origin of their
// own, talking to herald on another port.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { REPO } from '../setup/herald';

export const FIXTURE = join(REPO, 'web', 'test', 'fixtures', 'seed');
export const SEEDS = join(REPO, '..', 'shared', 'seeds');
/** The herald the seeds' code hard-codes. */
export const SEED_HOST = 'ws://localhost:8000';

/** Rewrites the seeds' host in a fixture's source to herald's port. */
export function pointAt(source: string, port: number): string {
  return source.replaceAll(SEED_HOST, `ws://localhost:${port}`);
}

/**
 * entry (a file of FIXTURE) bundled with the hooks it imports, the seeds'
 * hard-coded herald host pointed at port. plugins come before the one that
 * loads the fixtures.
 */
export async function bundleSeedPage(entry: string, port: number, plugins: Plugin[] = []): Promise<string> {
  const out = await build({
    entryPoints: [join(FIXTURE, entry)],
    bundle: true,
    write: false,
    format: 'iife',
    jsx: 'automatic',
    minify: true,
    define: { 'process.env.NODE_ENV': '"production"' },
    nodePaths: [join(REPO, 'web', 'node_modules')],
    plugins: [
      ...plugins,
      {
        // herald serves on a port the system picked, not the seeds' 8000.
        name: 'seed-host',
        setup(b) {
          b.onLoad({ filter: /fixtures[\\/]seed[\\/].*\.(tsx?|js)$/ }, (args) => ({
            contents: pointAt(readFileSync(args.path, 'utf8'), port),
            loader: args.path.endsWith('.js') ? 'jsx' : args.path.endsWith('.tsx') ? 'tsx' : 'ts',
          }));
        },
      },
    ],
  });
  return out.outputFiles[0]!.text;
}

/**
 * A page (an empty #root and /page.js) on 127.0.0.1 at a port the system
 * picks. The script is set after the start, once herald's port is known:
 * herald is told to allow the page's origin, and the page is bundled for
 * herald's port.
 */
export class SeedSite {
  script = '';
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static start(title: string): Promise<SeedSite> {
    const html = `<!doctype html><html lang="en"><meta charset="utf-8"><title>${title}</title><div id="root"></div><script src="/page.js"></script></html>`;
    let site: SeedSite | null = null;
    const srv = createServer((req, res) => {
      const isJS = new URL(req.url ?? '/', 'http://localhost').pathname === '/page.js';
      res.writeHead(200, { 'Content-Type': isJS ? 'text/javascript' : 'text/html; charset=utf-8' });
      res.end(isJS ? (site?.script ?? '') : html);
    });
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        site = new SeedSite(srv, (srv.address() as AddressInfo).port);
        resolve(site);
      });
    });
  }

  /** The page's origin, as herald's --allowed-origins takes it. */
  get origin(): string {
    return `http://localhost:${this.port}`;
  }

  close(): void {
    this.server.close();
  }
}
