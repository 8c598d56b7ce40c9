/** Generation requests (see src/node/generation/handlers.ts). */
import type { GenerateRequest, GenerateStarted, SampleRequest, SampleResult } from '../../node/studio/generation';

export type GenerationHandlers = {
  'generate-start': (req: GenerateRequest) => Promise<GenerateStarted>;
  'generate-stop': (arg: { genId: string }) => Promise<{ stopped: boolean }>;
  'generate-sample': (req: SampleRequest) => Promise<SampleResult[]>;
};
