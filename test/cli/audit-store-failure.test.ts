import { STORE_IO_PREFIX } from '../../lambda/adapters/embedded-dynamodb';
import { type AuditSource, knownSourceProblem, sourceFailure } from '../../lambda/cli/audit';
import { captureIO, REPO } from './helpers';

describe('audit and report: a store whose disk fails', () => {
  it('say "no space left on device" with the store, exit 2 (not a crash or "failed")', async () => {
    // Prepare: the error the embedded store's client throws when LevelDB cannot write (see embedded-dynamodb.ts)
    const err = Object.assign(
      new Error(`${STORE_IO_PREFIX}IO error: /data/.keyguard/000005.log: No space left on device`),
      { name: 'InternalServerError', $metadata: { httpStatusCode: 500 } },
    );
    const out = captureIO(REPO);
    const source = { label: 'store .keyguard', notFound: 'no audit store' } as AuditSource;

    // Act
    const code = await sourceFailure(err, out.io, 'audit', source);

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toBe(
      'keyguard: store .keyguard: no space left on device (IO error: /data/.keyguard/000005.log: No space left on ' +
        'device); free some space and run again: what was written before is kept\n',
    );
  });
});

describe('audit verify: a store whose files fail', () => {
  it('is reported with the same mapping as audit and report (knownSourceProblem), naming the store', async () => {
    // Prepare: a LevelDB read error, the failure a verify (read only) can meet
    const err = Object.assign(
      new Error(`${STORE_IO_PREFIX}IO error: /data/.keyguard/000005.ldb: Input/output error`),
      {
        name: 'InternalServerError',
        $metadata: { httpStatusCode: 500 },
      },
    );
    const out = captureIO(REPO);
    const source = { label: 'store .keyguard', notFound: 'no audit store' } as AuditSource;

    // Act
    const known = await knownSourceProblem(err, out.io, 'audit verify', source);

    // Assess
    expect(known).toBe(true);
    expect(out.stderr()).toBe(
      "keyguard: store .keyguard: the store's files could not be read or written (IO error: " +
        '/data/.keyguard/000005.ldb: Input/output error)\n',
    );
  });
});
