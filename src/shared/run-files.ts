/** The names of the files a run is saved as (its log, metrics, config, samples and report), the same on every side. */

/**
 * The part of a file name that names the run: its name with every run of characters other than letters, digits,
 * '.', '_' and '-' turned into one '-', at most 80 characters; the run's id when nothing of the name is left.
 */
export function runFileStem(run: { id: string; name: string }): string {
  const stem = run.name
    .replace(/[^\w.-]+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '')
    .slice(0, 80)
    .replace(/[-.]+$/, '');
  return stem || run.id;
}

export type RunFileKind = 'log' | 'metrics' | 'config' | 'samples' | 'report';

/** "my-run.log", "my-run-metrics.csv", "my-run-config.json", "my-run-samples.jsonl", "my-run-report.html". */
export function runFileName(run: { id: string; name: string }, kind: RunFileKind): string {
  const stem = runFileStem(run);
  switch (kind) {
    case 'log':
      return `${stem}.log`;
    case 'metrics':
      return `${stem}-metrics.csv`;
    case 'config':
      return `${stem}-config.json`;
    case 'samples':
      return `${stem}-samples.jsonl`;
    case 'report':
      return `${stem}-report.html`;
  }
}
