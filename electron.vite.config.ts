import { resolve } from 'node:path';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'electron-vite';

const root = import.meta.dirname;
// GPT2_STUDIO_OUT builds into another folder (two checkouts' e2e runs side by side); out/ by default
const out = process.env.GPT2_STUDIO_OUT ? resolve(process.env.GPT2_STUDIO_OUT) : resolve(root, 'out');

export default defineConfig({
  main: {
    build: {
      // Dependencies stay in node_modules (electron-builder packs them); the optional native TF.js backends too.
      externalizeDeps: { include: ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'] },
      lib: {
        entry: {
          index: resolve(root, 'src/main/index.ts'),
          // the training worker (utilityProcess) and the tokenizer threads, bundled: the built app needs no tsx
          'train-worker': resolve(root, 'src/node/train/worker-process.ts'),
          'tokenize-worker': resolve(root, 'src/node/datasets/tokenize-worker.ts'),
          // models for chat, sampling and evaluations, off the main process' event loop
          'model-worker': resolve(root, 'src/node/generation/model-worker.ts'),
          // the planner's calibration: a timed training step in a child process
          'calibrate-worker': resolve(root, 'src/node/runs/calibrate-process.ts'),
        },
      },
      // worker_threads takes a worker as an ES module only by its .mjs name
      rolldownOptions: {
        output: {
          entryFileNames: (chunk) =>
            chunk.name.endsWith('-worker') && chunk.name !== 'train-worker' ? '[name].mjs' : '[name].js',
        },
      },
      outDir: resolve(out, 'main'),
    },
  },
  preload: {
    build: {
      lib: { entry: resolve(root, 'src/preload/index.ts') },
      outDir: resolve(out, 'preload'),
      // A sandboxed preload must be CommonJS: out/preload/index.cjs (src/main/index.ts loads that name).
      rolldownOptions: { output: { format: 'cjs', entryFileNames: '[name].cjs' } },
    },
  },
  renderer: {
    root: resolve(root, 'src/renderer'),
    base: './',
    plugins: [react()],
    build: {
      outDir: resolve(out, 'renderer'),
      // Also served over HTTP by `gpt2-studio serve`: keep it small.
      minify: true,
      rolldownOptions: { input: resolve(root, 'src/renderer/index.html') },
    },
  },
});
