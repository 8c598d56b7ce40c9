/**
 * An accuracy (HellaSwag's acc and acc_norm) as the studio writes it everywhere: the Evals page, the run page, the
 * Runs table, the run report and the training log. A percent with one decimal, rounded as the decimal reads
 * (0.2955 -> "29.6%", where toFixed would give "29.5%"), or "—" when there is no value.
 */
const percentFmt = new Intl.NumberFormat('en-US', {
  style: 'percent',
  minimumFractionDigits: 1,
  maximumFractionDigits: 1,
});

export function accPercent(x: number | null | undefined): string {
  return x == null || !Number.isFinite(x) ? '—' : percentFmt.format(x);
}
