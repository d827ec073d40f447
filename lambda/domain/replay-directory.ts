import type { KeyEvent } from './cloudtrail';
import type { KeyDirectory, KeyMetadata } from './pipeline';
import { BEDROCK_SERVICE } from './types';

/**
 * The `KeyDirectory` of `keyguard replay`: the state of users and Bedrock keys rebuilt from the events
 * themselves, in event order. Where the live pipeline asks IAM, replay asks what the log files have shown so
 * far. Pure: no I/O, no clock; feed it events with `apply()` in eventTime order.
 *
 * Only what the events say is known, plus what an earlier replay into the same store recorded (`seed`): a key
 * created before the first log file and never replayed is unknown (the pipeline then ignores its Update/Reset
 * events, as it would for a key IAM does not have), and a user never seen in a CreateUser/TagUser event has no
 * tags.
 */

/** A key as the state holds it: `seeded` when it comes from an earlier run rather than from these logs. */
type HeldKey = KeyMetadata & { seeded?: true };

interface UserState {
  tags: Record<string, string>;
  /** Bedrock keys only, in creation order. */
  keys: Map<string, HeldKey>;
}

export class ReplayDirectory implements KeyDirectory {
  /** accountId → userName → state. */
  private readonly accounts = new Map<string, Map<string, UserState>>();
  /** Time of the last applied event: a seeded key is invisible to events before its creation. */
  private clock = '';

  /**
   * Adds a key known from an earlier run (the audit store's keys table) unless the state already has it, so
   * that logs replayed in several runs continue from where the last run left off.
   */
  seed(accountId: string, key: KeyMetadata): void {
    const user = this.user(accountId, key.userName, true);
    if (!user.keys.has(key.keyId)) user.keys.set(key.keyId, { ...key, seeded: true });
  }

  /** Applies one event to the state. Events about keys or users the state does not know change nothing. */
  apply(event: KeyEvent): void {
    const accountId = event.meta.accountId;
    this.clock = event.meta.eventTime;
    if (event.kind === 'user-tags') {
      const user = this.user(accountId, event.userName, true);
      if (event.action === 'CreateUser') {
        // A new user starts with exactly the tags it was created with.
        user.tags = { ...event.setTags };
      } else if (event.action === 'TagUser') {
        Object.assign(user.tags, event.setTags);
      } else {
        for (const k of event.removedTagKeys) delete user.tags[k];
      }
      return;
    }

    switch (event.action) {
      case 'Create': {
        // classifyRecord already drops other services; checked again so the state can only hold Bedrock keys.
        if (event.serviceName !== BEDROCK_SERVICE) return;
        const user = this.user(accountId, event.userName, true);
        user.keys.set(event.keyId, {
          keyId: event.keyId,
          userName: event.userName,
          status: event.created?.status ?? 'Active',
          createdAt: event.created?.createdAt ?? event.meta.eventTime,
          expiresAt: event.created?.expiresAt ?? null,
        });
        return;
      }
      case 'Update': {
        const key = this.user(accountId, event.userName, false)?.keys.get(event.keyId);
        if (key && event.requestedStatus) key.status = event.requestedStatus;
        return;
      }
      case 'Reset':
        // A new secret; metadata (dates, status) is unchanged.
        return;
      case 'Delete':
        this.user(accountId, event.userName, false)?.keys.delete(event.keyId);
        return;
    }
  }

  /**
   * Moves the clock to a time with no event (a Bedrock call being replayed), so that seeded keys created
   * before it are visible. Never moves back.
   */
  advanceTo(time: string): void {
    if (time > this.clock) this.clock = time;
  }

  async getKey(accountId: string, userName: string, keyId: string): Promise<KeyMetadata | null> {
    const key = this.user(accountId, userName, false)?.keys.get(keyId);
    return key && this.visible(key) ? plain(key) : null;
  }

  async listUserKeys(accountId: string, userName: string): Promise<KeyMetadata[]> {
    const user = this.user(accountId, userName, false);
    return user ? [...user.keys.values()].filter((k) => this.visible(k)).map(plain) : [];
  }

  /** A key from these logs always; a seeded key once the replay has reached its creation time. */
  private visible(key: HeldKey): boolean {
    return !key.seeded || key.createdAt === null || key.createdAt <= this.clock;
  }

  async getUserTags(accountId: string, userName: string): Promise<Record<string, string>> {
    return { ...(this.user(accountId, userName, false)?.tags ?? {}) };
  }

  private user(accountId: string, userName: string, create: true): UserState;
  private user(accountId: string, userName: string, create: false): UserState | undefined;
  private user(accountId: string, userName: string, create: boolean): UserState | undefined {
    let users = this.accounts.get(accountId);
    if (!users) {
      if (!create) return undefined;
      users = new Map();
      this.accounts.set(accountId, users);
    }
    let user = users.get(userName);
    if (!user && create) {
      user = { tags: {}, keys: new Map() };
      users.set(userName, user);
    }
    return user;
  }
}

function plain(key: HeldKey): KeyMetadata {
  const { seeded: _seeded, ...meta } = key;
  return meta;
}
