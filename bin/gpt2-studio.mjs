#!/usr/bin/env node
// The gpt2-studio command. It runs the TypeScript sources through tsx's loader, so nothing needs building first.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
