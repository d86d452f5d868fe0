import { defineConfig, mergeConfig } from 'vitest/config';
import viteConfig from './vite.config.ts';

export default mergeConfig(
  viteConfig,
  defineConfig({
    test: {
      projects: [
        {
          extends: true,
          test: {
            name: 'unit',
            include: ['test/unit/**/*.test.{ts,tsx}'],
            environment: 'node',
            globalSetup: ['test/setup/global.ts'],
            testTimeout: 30_000,
            hookTimeout: 60_000,
          },
        },
        {
          extends: true,
          test: {
            name: 'browser',
            include: ['test/browser/**/*.test.ts'],
            environment: 'node',
            globalSetup: ['test/setup/global.ts'],
            testTimeout: 90_000,
            hookTimeout: 90_000,
            // Each file runs its own herald and Chromium; one at a time keeps
            // timings honest on a 2-core machine.
            fileParallelism: false,
          },
        },
      ],
    },
  }),
);
