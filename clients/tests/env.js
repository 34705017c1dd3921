// Where the server under test is and where its emails land: set by tests/it/clients.rs,
// which starts the API (with workers, emails written to a folder) before running this suite.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const BASE = process.env.LINKAI_BASE_URL ?? 'http://127.0.0.1:8080';
export const API = `${BASE}/graphql`;
export const MAIL_DIR = process.env.LINKAI_MAIL_DIR ?? '../var/mail';
/** The origin allowed by the server's CORS_ORIGINS: where the browser test serves its page. */
export const PAGE_PORT = Number(process.env.LINKAI_PAGE_PORT ?? 5173);
export const PASSWORD = 'correct horse battery';
/** The agent runtime's service token, present in the server's database. */
export const SERVICE_TOKEN = process.env.LINKAI_SERVICE_TOKEN ?? '';

export function unique(name) {
  return `${name.toLowerCase()}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}@example.com`;
}

/**
 * Waits for the email to `to` whose link matches `path` and returns the token in it: up to
 * 30 s, which the outbox's worker takes only on a host busy with the rest of the suite.
 */
export async function tokenFromEmail(to, path) {
  for (const deadline = Date.now() + 30000; Date.now() < deadline; ) {
    for (const file of await readdir(MAIL_DIR).catch(() => [])) {
      const raw = await readFile(join(MAIL_DIR, file), 'utf8');
      // Quoted-printable: undo soft line breaks and escaped `=` before reading the link.
      const text = raw.replace(/=\r?\n/g, '').replace(/=3D/g, '=');
      if (!text.toLowerCase().includes(`to: ${to}`) && !text.toLowerCase().includes(`<${to}>`)) continue;
      const match = text.match(new RegExp(`${path}\\?token=([A-Za-z0-9_-]+)`));
      if (match) return match[1];
    }
    await sleep(50);
  }
  throw new Error(`no email with ${path} reached ${to} in ${MAIL_DIR}`);
}
