// The @herald/client npm package as a user gets it: built
// (scripts/build-client.mjs) into a copy of packages/client, packed with
// `npm pack`, installed from the tarball into a separate project (offline;
// react, ws and the type packages linked from web/node_modules), then that
// project's TypeScript (packages/client/test/consumer) is type-checked
// under strict mode with each module resolution, and its Node.js program
// talks to a real herald through the installed package.
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { REPO } from '../setup/herald';
import { APP_SECRET, startAppHerald } from './helpers';

const WEB = join(REPO, 'web');
const PKG = join(WEB, 'packages/client');
const TSC = join(WEB, 'node_modules/typescript/bin/tsc');
/** What the consumer project takes from web/node_modules rather than a registry. */
const LINKED = ['react', 'ws', '@types/react', '@types/node', '@types/ws'];

const exec = promisify(execFile);

/** Runs a command; a failure throws with everything it printed. */
async function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  try {
    const { stdout } = await exec(cmd, args, { cwd, env: { ...process.env, ...env }, maxBuffer: 16 << 20, timeout: 120_000 });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

interface Packed {
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string }[];
}

let tmp: string;
let consumer: string;
let packed: Packed;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'herald-client-package-'));
  // A copy of the package directory, so that a concurrent build in the
  // working tree and this one never share a dist/.
  const staging = join(tmp, 'package');
  cpSync(PKG, staging, {
    recursive: true,
    filter: (src) => !['dist', 'node_modules'].includes(basename(src)) && !src.endsWith('.tgz'),
  });
  await run(process.execPath, [join(WEB, 'scripts/build-client.mjs'), '--out', join(staging, 'dist')], WEB);
  const out = await run('npm', ['pack', '--json', '--pack-destination', tmp], staging);
  const [result] = JSON.parse(out) as Packed[];
  if (!result) throw new Error(`npm pack printed no result: ${out}`);
  packed = result;

  consumer = join(tmp, 'consumer');
  cpSync(join(PKG, 'test/consumer'), consumer, { recursive: true });
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', join(tmp, packed.filename)], consumer);
  // After npm install, which would prune what its package.json does not name.
  mkdirSync(join(consumer, 'node_modules/@types'), { recursive: true });
  for (const name of LINKED) symlinkSync(join(WEB, 'node_modules', name), join(consumer, 'node_modules', name), 'dir');
}, 180_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the @herald/client package', () => {
  it('holds the bundles, a declaration per source module, the README and nothing else', () => {
    const sources = (dir: string) =>
      readdirSync(join(WEB, 'src', dir))
        .filter((f) => /\.tsx?$/.test(f))
        .map((f) => `dist/types/${dir}/${f.replace(/\.tsx?$/, '.d.ts')}`);
    const want = ['README.md', 'package.json', 'dist/index.js', 'dist/react.js', ...sources('client'), ...sources('hooks')];
    expect(packed.files.map((f) => f.path).sort()).toEqual(want.sort());
    expect(packed.size).toBeLessThan(100_000); // 27 kB when this was written

    const manifest = JSON.parse(readFileSync(join(consumer, 'node_modules/@herald/client/package.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(manifest).toMatchObject({ name: '@herald/client', type: 'module', sideEffects: false });
    expect(manifest.dependencies).toBeUndefined();
    expect(manifest.peerDependenciesMeta).toEqual({ react: { optional: true } });
  });

  it.each(['bundler', 'node16', 'node-no-dom'])('type-checks in a strict consumer (tsconfig.%s.json)', async (config) => {
    await run(process.execPath, [TSC, '-p', `tsconfig.${config}.json`], consumer);
  }, 120_000);

  it('compiles with NodeNext and runs in Node.js: connects, subscribes and receives a published event', async () => {
    await run(process.execPath, [TSC, '-p', 'tsconfig.nodenext.json'], consumer);
    const { h, dispose } = await startAppHerald(inject('heraldBin'));
    try {
      const out = await run(process.execPath, ['out/run.js'], consumer, { HERALD_URL: h.url, APP_TOKEN_SECRET: APP_SECRET });
      const got = JSON.parse(out.trim().split('\n').pop() ?? '') as { event: unknown; state: string };
      expect(got.event).toMatchObject({ type: 'message', group: 'chat:package', data: { text: 'hello from the package' }, offset: 1 });
      expect(got.state).toBe('closed');
    } finally {
      await dispose();
    }
  }, 120_000);
});
