/**
 * Published figures that runs are measured against, in one place for the evaluations, the Evals page and the
 * reference lines of Compare.
 */
export const REFERENCE = {
  /** OpenAI GPT-2 124M, val loss on FineWeb-edu (as measured in "Let's reproduce GPT-2") */
  gpt2ValLoss: 3.2924,
  /** HellaSwag on the 10,042 validation examples, completion style; acc null where it was not published */
  hellaswag: {
    gpt2: { acc: 0.2859, accNorm: 0.2955 },
    gpt2Xl: { acc: 0.3842, accNorm: 0.4893 },
    /** the GPT-3 paper's Small model (124M), zero-shot */
    gpt3: { acc: null, accNorm: 0.337 },
    /** chance: one of four endings */
    random: { acc: 0.25, accNorm: 0.25 },
  },
} as const;
