// Vitest global setup: one herald binary for the whole run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { buildHerald } from './herald';

declare module 'vitest' {
  export interface ProvidedContext {
    heraldBin: string;
  }
}

export default function setup(project: TestProject) {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bin-'));
  const started = Date.now();
  const bin = buildHerald(dir);
  if (!process.env.HERALD_BIN) console.log(`built herald in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  project.provide('heraldBin', bin);
  return () => rmSync(dir, { recursive: true, force: true });
}
