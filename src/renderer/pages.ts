/** The pages of the studio (src/renderer/features; see docs/ARCHITECTURE.md, "Adding a page"), in navigation order. */
export const PAGES = [
  {
    id: 'runs',
    title: 'Runs',
    summary: 'Every training run in this workspace: status, loss, throughput, and live curves while it trains.',
  },
  {
    id: 'new-run',
    title: 'New run',
    summary: 'Pick a model preset, a tokenized dataset, an engine and the schedule, then launch a training run.',
  },
  {
    id: 'compare',
    title: 'Compare',
    summary: 'Loss, learning rate and throughput of several runs on the same axes.',
  },
  {
    id: 'checkpoints',
    title: 'Checkpoints',
    summary: 'Browse the checkpoints of every run, resume from one, or export it for transformers.',
  },
  {
    id: 'chat',
    title: 'Chat',
    summary: 'Sample from any checkpoint, or from the imported GPT-2 weights, with temperature and top-k.',
  },
  {
    id: 'datasets',
    title: 'Datasets',
    summary: 'Download and tokenize Tiny Shakespeare, FineWeb-edu sample-10BT, or your own text, JSONL or parquet.',
  },
  {
    id: 'evals',
    title: 'Evals',
    summary:
      'HellaSwag accuracy of any checkpoint or imported model in one click, and the loss of each token of a text.',
  },
  {
    id: 'settings',
    title: 'Settings',
    summary: 'The workspace folder and the training engines of this machine.',
  },
] as const;

export type PageId = (typeof PAGES)[number]['id'];
export const DEFAULT_PAGE: PageId = 'runs';
