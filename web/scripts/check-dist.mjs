// Fails when the committed web/dist is not what the sources build to:
// rebuilds into a temporary folder and compares every file byte for byte.
// (web/embed_test.go checks the source hash recorded in dist without Node.)
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

const root = fileURLToPath(new URL('..', import.meta.url));
const committed = join(root, 'dist');
const fresh = mkdtempSync(join(tmpdir(), 'herald-dist-'));

function files(dir) {
  const out = [];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  walk(dir);
  return out.sort();
}

try {
  await build({ root, configFile: join(root, 'vite.config.ts'), logLevel: 'warn', build: { outDir: fresh, emptyOutDir: true } });
  const want = files(fresh);
  let have = [];
  try {
    have = files(committed);
  } catch {
    // no dist at all
  }
  const problems = [];
  for (const f of want) if (!have.includes(f)) problems.push(`missing: dist/${f}`);
  for (const f of have) if (!want.includes(f)) problems.push(`not built from the sources: dist/${f}`);
  for (const f of want) {
    if (have.includes(f) && !readFileSync(join(fresh, f)).equals(readFileSync(join(committed, f)))) problems.push(`differs: dist/${f}`);
  }
  if (problems.length) {
    console.error(`web/dist is stale:\n  ${problems.join('\n  ')}\nRun \`npm --prefix web run build\` and commit web/dist.`);
    process.exitCode = 1;
  } else {
    console.log(`web/dist is current (${want.length} files)`);
  }
} finally {
  rmSync(fresh, { recursive: true, force: true });
}
