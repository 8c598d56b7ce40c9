import path from 'node:path';

/** Where `prepare hellaswag` keeps the validation split inside the workspace. */
export const hellaswagDataPath = (home: string): string => path.join(home, 'datasets', 'hellaswag', 'hellaswag_val.jsonl');
