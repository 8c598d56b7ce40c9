/** Saving what the page made (a CSV, a PNG) as a file, through a Blob link. */

/** Downloads `blob` as `filename` (the browser's or Electron's save flow), then frees its URL. */
export function downloadBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.style.display = 'none';
  document.body.appendChild(a);
  a.click();
  a.remove();
  // the download has started by the time the click returns; the delay only guards slow save dialogs
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The local time as 20250102-130405, for file names. */
export function timestamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}
