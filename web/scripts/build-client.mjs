// Builds the @herald/client package (packages/client) from src/client and
// src/hooks:
//   dist/index.js       the client, one ES module (esbuild)
//   dist/react.js       the React hooks; imports ./index.js and react
//   dist/types/**.d.ts  declarations (tsc), with Node ESM specifiers
//
//   node scripts/build-client.mjs [--out <dir>]   (default packages/client/dist)
//
// The package has no dependencies: any import other than react (a peer, for
// ./react only) or the hooks' '@herald/client' fails the build.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const web = fileURLToPath(new URL('..', import.meta.url));
const pkgDir = join(web, 'packages/client');

const outArg = process.argv.indexOf('--out');
const out = resolve(outArg > 0 ? process.argv[outArg + 1] : join(pkgDir, 'dist'));
rmSync(out, { recursive: true, force: true });

/** Bare imports: react stays external, the hooks' '@herald/client' is ./index.js, anything else is a mistake. */
const imports = {
  name: 'herald-client-imports',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path === '@herald/client') return { path: './index.js', external: true };
      if (args.path === 'react' || args.path.startsWith('react/')) return { path: args.path, external: true };
      return { errors: [{ text: `@herald/client has no dependencies: ${args.importer} imports ${args.path}` }] };
    });
  },
};

await build({
  absWorkingDir: web,
  entryPoints: { index: 'src/client/index.ts', react: 'src/hooks/index.ts' },
  outdir: out,
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  target: 'es2022',
  tsconfig: join(web, 'tsconfig.json'),
  plugins: [imports],
  legalComments: 'none',
  logLevel: 'warning',
});

const tsc = join(web, 'node_modules/typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(pkgDir, 'tsconfig.build.json'), '--outDir', join(out, 'types')], {
  cwd: web,
  stdio: 'inherit',
});

// tsc keeps the sources' specifiers ('./protocol', '@herald/client'), which
// Node's ESM resolution (moduleResolution node16/nodenext) cannot follow in
// declaration files: give each its file, as './protocol.js'.
const typesDir = join(out, 'types');
const clientIndex = join(typesDir, 'client/index.d.ts');
const specifier = /(\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)(['"])([^'"]+)\2/g;

function declarations(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? declarations(join(dir, e.name)) : e.name.endsWith('.d.ts') ? [join(dir, e.name)] : [],
  );
}

function target(file, spec) {
  if (spec === '@herald/client') return clientIndex;
  if (!spec.startsWith('.')) return null; // react and the like
  const base = resolve(dirname(file), spec.replace(/\.(js|ts|tsx)$/, ''));
  for (const f of [`${base}.d.ts`, join(base, 'index.d.ts')]) if (existsSync(f)) return f;
  throw new Error(`${relative(out, file)}: cannot resolve ${spec}`);
}

for (const file of declarations(typesDir)) {
  const text = readFileSync(file, 'utf8').replace(specifier, (all, lead, q, spec) => {
    const t = target(file, spec);
    if (!t) return all;
    let rel = relative(dirname(file), t).split(sep).join('/').replace(/\.d\.ts$/, '.js');
    if (!rel.startsWith('.')) rel = `./${rel}`;
    return `${lead}${q}${rel}${q}`;
  });
  writeFileSync(file, text);
}

// The entry points package.json names must all exist.
const manifest = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
for (const [entry, conds] of Object.entries(manifest.exports)) {
  for (const p of typeof conds === 'string' ? [conds] : Object.values(conds)) {
    if (!p.startsWith('./dist/')) continue;
    if (!existsSync(join(out, p.slice('./dist/'.length)))) throw new Error(`exports["${entry}"]: ${p} was not built`);
  }
}
console.log(`@herald/client ${manifest.version} built into ${relative(process.cwd(), out) || '.'}`);
