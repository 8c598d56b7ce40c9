/**
 * The id of a generation this page starts, chosen before it asks the service (chats-send and generate-start take
 * it), so that every event of the answer can be told apart from the first one on. From getRandomValues, which a
 * page served over plain HTTP to another machine has too (randomUUID needs a secure context).
 */
export function newGenId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `gen-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}
