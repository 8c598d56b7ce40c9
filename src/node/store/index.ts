/**
 * The workspace's SQLite store (studio.db): runs, metrics, samples, checkpoints, logs, evals and chats.
 * See store.ts for the API, the *-table.ts modules for each table, and migrations.ts for the schema.
 */
export { openStore, Store, type StoreInfo, type StoreOptions } from './store';
export { DATABASE_FILE, type OpenDatabaseOptions } from './database';
export { MIGRATIONS, SCHEMA_VERSION, migrate, type Migration, type MigrateResult } from './migrations';
export { newId, checkId } from './ids';
export * from './types';
export {
  ChatStore,
  type StoredChatSettings,
  type StoredConversation,
  type StoredChatMessage,
  type AddChatMessageInput,
} from '../chats/store';
