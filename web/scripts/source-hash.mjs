// The hash of everything the production build is made from. The build
// writes it to dist/source-hash.txt; web/embed_test.go (Go) and
// scripts/check-dist.mjs recompute it to tell when the committed dist is
// stale. Keep the file list and the hashing in step with embed_test.go.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

/** Files and folders (relative to web/) that the build reads. */
export const BUILD_INPUTS = ['index.html', 'package.json', 'package-lock.json', 'tsconfig.json', 'vite.config.ts', 'public', 'src'];

function walk(root, dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) walk(root, p, out);
    else if (st.isFile()) out.push(relative(root, p).split(sep).join('/'));
  }
}

/** sha256 over (path NUL content NUL) of every input file, sorted by path. */
export function sourceHash(root) {
  const files = [];
  for (const input of BUILD_INPUTS) {
    const p = join(root, input);
    if (!existsSync(p)) continue;
    if (statSync(p).isDirectory()) walk(root, p, files);
    else files.push(input);
  }
  files.sort();
  const h = createHash('sha256');
  for (const f of files) {
    h.update(f);
    h.update('\0');
    h.update(readFileSync(join(root, f)));
    h.update('\0');
  }
  return h.digest('hex');
}
