/** GPT-2 model shapes. The gpt2* ones are OpenAI's released models; nano and micro train on a CPU. */
export const MODEL_PRESETS = {
  nano: { nLayer: 4, nHead: 4, nEmbd: 128, blockSize: 256 },
  micro: { nLayer: 6, nHead: 6, nEmbd: 384, blockSize: 256 },
  gpt2: { nLayer: 12, nHead: 12, nEmbd: 768, blockSize: 1024 },
  'gpt2-medium': { nLayer: 24, nHead: 16, nEmbd: 1024, blockSize: 1024 },
  'gpt2-large': { nLayer: 36, nHead: 20, nEmbd: 1280, blockSize: 1024 },
  'gpt2-xl': { nLayer: 48, nHead: 25, nEmbd: 1600, blockSize: 1024 },
} as const;

export type ModelPresetName = keyof typeof MODEL_PRESETS;
export const MODEL_PRESET_NAMES = Object.keys(MODEL_PRESETS) as [ModelPresetName, ...ModelPresetName[]];
