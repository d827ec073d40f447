import type { Policy } from '../shared/config';
import type { LeakEvidence, LeakVerification } from './types';

/**
 * Whether a found key is a working key, and what that allows. The alias a long-term key decodes to
 * (`<user>-at-<account>`) is public information: anyone who can write text into a subscribed log can forge
 * `ABSK` + base64("<real user>-at-<account>:<anything>"). Only the secret proves a leak, and only Bedrock can
 * check the secret, so the leak function asks it (a `LeakVerifier`, see adapters/bedrock-key-probe.ts) and:
 * - VERIFIED: the leak is acted on as before (LEAKED, critical, deactivated in enforce mode);
 * - REJECTED: nothing is deactivated; the finding is recorded and its owner told, as a forged or dead key
 *   (medium: someone wrote a key-shaped string naming this user, or an old key was printed);
 * - UNVERIFIED: LEAKED, critical, but not deactivated automatically unless `leakDetection.deactivateUnverified`.
 * Pure: no I/O.
 */

/** A found key, held in memory only for the one verification call; never logged, stored or returned. */
export type KeyCandidate =
  | { kind: 'LONG_TERM'; key: string; accountId: string; userName: string }
  | { kind: 'SHORT_TERM'; key: string; region: string };

/** The port the leak function verifies keys through. It never throws: a failure is an UNVERIFIED answer. */
export interface LeakVerifier {
  verify(candidate: KeyCandidate): Promise<LeakVerification>;
}

/**
 * `LeakVerification.method` of a string the leak function did not check at all because its batch had used its
 * verification budget or needed its remaining time (domain/leak-plan.ts). Anyone who can write to a subscribed log
 * can cause that (a flood of distinct strings), so unlike a check that failed it never deactivates, whatever
 * `leakDetection.deactivateUnverified` says.
 */
export const SKIPPED_CHECK = 'skipped';

/**
 * `LeakVerification.method` of a key reported by `keyguard scan --quarantine` (issue 15). The report never carries
 * the key, so the function cannot ask Bedrock whether it works; and whoever may put events with the report's source
 * (ScanReporterPolicy: any CI job it is attached to) could name any user of the account. So a report alone never
 * deactivates, whatever `leakDetection.deactivateUnverified` says: it is recorded (LEAKED, critical) and notified,
 * and a person checks and deactivates. A report can make keyguard say something, never do something.
 */
export const SCAN_REPORT_CHECK = 'scan-report';

/** Not checked at all: no call was made, and none could be trusted to decide (see above). */
function skipped(leak: LeakEvidence): boolean {
  const v = leak.verification;
  return v?.result === 'UNVERIFIED' && (v.method === SKIPPED_CHECK || v.method === SCAN_REPORT_CHECK);
}

/**
 * Whether this leak may deactivate a key: a verified one, or an unverified one (including a leak recorded before
 * keys were verified) when the policy opts in, unless it was not checked at all (SKIPPED_CHECK). A rejected one
 * never.
 */
export function leakMayDeactivate(leak: LeakEvidence | null | undefined, config: Policy): boolean {
  if (!leak) return false;
  const result = leak.verification?.result ?? 'UNVERIFIED';
  if (result === 'VERIFIED') return true;
  if (result === 'REJECTED') return false;
  return config.leakDetection.deactivateUnverified && !skipped(leak);
}

/** The leak to remember on the key: a verified one is not replaced by a later finding that is not. */
export function leakToRemember(
  found: LeakEvidence | null | undefined,
  remembered: LeakEvidence | null | undefined,
): LeakEvidence | null {
  if (!found) return remembered ?? null;
  if (remembered?.verification?.result === 'VERIFIED' && found.verification?.result !== 'VERIFIED') {
    return remembered;
  }
  return found;
}

/** What the check said, with no consequence attached (a short-term key is never deactivated anyway). */
export function verificationNote(v: LeakVerification): string {
  const how = `${v.method} at ${v.checkedAt}: ${v.reason}`;
  if (v.result === 'VERIFIED') return `verified: Bedrock accepted it as a working key (${how})`;
  if (v.result === 'REJECTED') return `Bedrock rejected it: it is not a working key (${how})`;
  return `it could not be verified (${how})`;
}

/** One sentence on the verification and what it allowed, for violation details and notices. */
export function describeVerification(leak: LeakEvidence, config: Policy): string {
  const v = leak.verification;
  if (!v) {
    return (
      'it was found before keyguard verified keys, so whether it is a working key is not known' +
      (config.leakDetection.deactivateUnverified
        ? ''
        : ': it is not deactivated automatically (leakDetection.deactivateUnverified is false)')
    );
  }
  if (v.result !== 'UNVERIFIED') return verificationNote(v);
  if (v.method === SCAN_REPORT_CHECK) {
    return (
      'keyguard scan reported it without the key (a report never carries it), so whether it is a working key ' +
      'could not be checked, and a report alone never deactivates a key, even with ' +
      'leakDetection.deactivateUnverified (whoever may send reports could name any user): check whether it is the ' +
      'real key and deactivate it if so'
    );
  }
  if (skipped(leak)) {
    return (
      `${verificationNote(v)}, so it was not deactivated automatically, even with ` +
      'leakDetection.deactivateUnverified (a flood of strings can leave a batch without time to check): ' +
      'check whether it is the real key and deactivate it if so'
    );
  }
  return config.leakDetection.deactivateUnverified
    ? `${verificationNote(v)}; leakDetection.deactivateUnverified is true, so it is treated as leaked`
    : `${verificationNote(v)}, so it was not deactivated automatically ` +
        '(leakDetection.deactivateUnverified is false): check whether it is the real key and deactivate it if so';
}

/** One escape a key picks up in transit (leaks.ts reads the same): JSON `\/`, `\u002B`…, URL `%2B`…, `\n`. */
const KEY_ESCAPE = /\\+(?:u00(?:2[bBfF]|3[dD])|\/|[nr])|%(?:2[bBfF]|3[dD])/g;

function unescapeOne(m: string): string {
  const tail = m.replace(/^\\+/, '').toLowerCase();
  if (tail === 'n' || tail === 'r') return '';
  if (tail === '/' || tail === 'u002f' || tail === '%2f') return '/';
  if (tail === 'u002b' || tail === '%2b') return '+';
  return '=';
}

/**
 * The key a finding spans in `text` (`[index, end)`), unescaped, for the one verification call, or null when it
 * does not give back exactly the key that was found (its fingerprint is the check): then nothing is verified.
 */
export function keyInText(
  text: string,
  span: { index: number; end: number; fingerprint: string },
  fingerprintOf: (key: string) => string,
): string | null {
  const key = text.slice(span.index, span.end).replace(KEY_ESCAPE, unescapeOne);
  return fingerprintOf(key) === span.fingerprint ? key : null;
}
