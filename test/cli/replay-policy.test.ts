import { join } from 'node:path';
import { runReplay } from '../../lambda/cli/replay';
import { loadConfig, policyVersion } from '../../lambda/shared/config';
import { captureIO, EXAMPLES, REPO, removeTempDirs, tempDir } from './helpers';

afterAll(removeTempDirs);

const DEFAULTS = policyVersion(loadConfig(undefined, tempDir()).config);
const EXAMPLE_CONFIG = join(EXAMPLES, 'keyguard.config.json');
const EXAMPLE = policyVersion(loadConfig(EXAMPLE_CONFIG, REPO).config);

describe('keyguard replay with another policy over an existing store', () => {
  it('reports the decisions on record under the policy that made them, not the new one', async () => {
    // Prepare: a store filled under the built-in defaults.
    expect(EXAMPLE).not.toBe(DEFAULTS);
    const store = tempDir();
    const cwd = tempDir();
    const first = captureIO(cwd);
    expect(await runReplay([join(EXAMPLES, 'cloudtrail')], { store }, first.io)).toBe(0);

    // Act: the same logs, replayed under another policy.
    const second = captureIO(cwd);
    const code = await runReplay(
      [join(EXAMPLES, 'cloudtrail')],
      { store, config: EXAMPLE_CONFIG },
      second.io,
    );

    // Assess
    expect(code).toBe(0);
    const out = second.stdout();
    expect(out).toContain('Decisions: 12 (0 new, 12 already on record)');
    // Every row names the policy its decision was made under.
    const earlier = out.split('\n').filter((l) => l.endsWith(`earlier run, policy ${DEFAULTS}`));
    expect(earlier).toHaveLength(12);
    // The footer does not claim the new policy decided them.
    expect(out).toContain(
      `Policy ${EXAMPLE} (${EXAMPLE_CONFIG}) made 0 of the decisions shown; 12 were made earlier under policy ${DEFAULTS} and were not re-evaluated`,
    );
    expect(second.stderr()).toContain(
      `keyguard: warning: 12 decisions shown were made earlier under another policy (${DEFAULTS}), not under ${EXAMPLE}`,
    );
    expect(second.stderr()).toContain('keyguard preview');
  });

  it('says nothing of other policies when the decisions shown were made under this one', async () => {
    // Prepare
    const store = tempDir();
    const cwd = tempDir();
    await runReplay([join(EXAMPLES, 'cloudtrail')], { store }, captureIO(cwd).io);

    // Act
    const again = captureIO(cwd);
    await runReplay([join(EXAMPLES, 'cloudtrail')], { store }, again.io);

    // Assess
    expect(again.stdout()).not.toContain('not re-evaluated');
    expect(
      again
        .stdout()
        .split('\n')
        .filter((l) => l.endsWith('earlier run')),
    ).toHaveLength(12);
    expect(again.stderr()).toBe('');
  });
});

describe('keyguard replay --since on an empty store', () => {
  it('warns that earlier state is unknown and marks MISSING_* of users not created in the window', async () => {
    // Prepare: svc-chatbot was created (with its tags) on 2026-11-20, before the window; svc-rag-indexer in it.
    const cwd = tempDir();
    const out = captureIO(cwd);

    // Act
    const code = await runReplay(
      [join(EXAMPLES, 'cloudtrail')],
      { store: tempDir(), since: '2026-11-21' },
      out.io,
    );

    // Assess
    expect(code).toBe(0);
    expect(out.stderr()).toContain(
      'keyguard: warning: --since 2026-11-21: state set before the window is unknown (the store is empty: no tags and no earlier keys)',
    );
    expect(out.stderr()).toMatch(
      /; 1 decision reports MISSING_\* for users whose tags may have been set before it/,
    );
    const lines = out.stdout().split('\n');
    const chatbot = lines.filter((l) => /\ssvc-chatbot\s/.test(l) && /Create key/.test(l));
    expect(chatbot.length).toBe(1);
    for (const l of chatbot) expect(l).toMatch(/MISSING_OWNER\?,MISSING_PURPOSE\?,MISSING_REVIEW_CADENCE\?/);
    // A user created in the window: its missing tags at key creation are established, not marked.
    const rag = lines.find((l) => /\ssvc-rag-indexer\s/.test(l) && /Create key/.test(l));
    expect(rag).toMatch(/\sMISSING_OWNER,MISSING_PURPOSE,MISSING_REVIEW_CADENCE\s/);
    expect(out.stdout()).toMatch(
      / 1 of them reports MISSING_\* \(marked \?\) for users whose tags may have been set before --since: unknown before window/,
    );
  });

  it('without --since nothing is marked', async () => {
    const out = captureIO(tempDir());
    await runReplay([join(EXAMPLES, 'cloudtrail')], { store: tempDir() }, out.io);
    expect(out.stdout()).not.toContain('?,');
    expect(out.stderr()).toBe('');
  });
});
