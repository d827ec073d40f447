import { isListedApprover, sharedRoleConflict } from '../../lambda/domain/self-approval';

const A = '111122223333';

describe('sharedRoleConflict: a session of the creating role is the creator, unless AWS names the sessions', () => {
  it.each([
    [
      'another session of the plain role that created the key',
      `arn:aws:sts::${A}:assumed-role/Deployer/x`,
      `arn:aws:sts::${A}:assumed-role/Deployer/bob`,
      true,
    ],
    [
      'the same role in another account',
      `arn:aws:sts::444455556666:assumed-role/Deployer/x`,
      `arn:aws:sts::${A}:assumed-role/Deployer/bob`,
      false,
    ],
    [
      'another role',
      `arn:aws:sts::${A}:assumed-role/Auditor/x`,
      `arn:aws:sts::${A}:assumed-role/Deployer/bob`,
      false,
    ],
    [
      'a colleague in an Identity Center role',
      `arn:aws:sts::${A}:assumed-role/AWSReservedSSO_Dev_01/carol`,
      `arn:aws:sts::${A}:assumed-role/AWSReservedSSO_Dev_01/bob`,
      false,
    ],
    [
      'an IAM user caller',
      `arn:aws:iam::${A}:user/Deployer`,
      `arn:aws:sts::${A}:assumed-role/Deployer/bob`,
      false,
    ],
    [
      'a creator that is an IAM user',
      `arn:aws:sts::${A}:assumed-role/bob/x`,
      `arn:aws:iam::${A}:user/bob`,
      false,
    ],
  ])('%s: %s', (_what, caller, creator, conflict) => {
    expect(sharedRoleConflict(caller, creator) !== null).toBe(conflict);
  });

  it('compares role names case-insensitively, as IAM does', () => {
    expect(
      sharedRoleConflict(
        `arn:aws:sts::${A}:assumed-role/deployer/x`,
        `arn:aws:sts::${A}:assumed-role/Deployer/bob`,
      ),
    ).toEqual({
      role: 'creator',
      value: `arn:aws:sts::${A}:assumed-role/Deployer/bob`,
    });
  });

  it('is null without a creator', () => {
    expect(sharedRoleConflict(`arn:aws:sts::${A}:assumed-role/Deployer/x`, null)).toBeNull();
  });
});

describe('isListedApprover: by ARN, never by a session name', () => {
  const ROLE = `arn:aws:iam::${A}:role/security/Approver`;
  const USER = `arn:aws:iam::${A}:user/ops/carol`;
  it.each([
    ['a session of a listed role (path dropped)', `arn:aws:sts::${A}:assumed-role/Approver/anyone`, true],
    ['a listed user', `arn:aws:iam::${A}:user/ops/carol`, true],
    ['a listed user under another path', `arn:aws:iam::${A}:user/carol`, true],
    ['the listed role’s name as a user', `arn:aws:iam::${A}:user/Approver`, false],
    ['a session named like the listed user', `arn:aws:sts::${A}:assumed-role/Other/carol`, false],
    ['the listed role in another account', `arn:aws:sts::444455556666:assumed-role/Approver/x`, false],
    ['a federated user named like the listed user', `arn:aws:sts::${A}:federated-user/carol`, false],
  ])('%s: %s', (_what, caller, listed) => {
    expect(isListedApprover(caller, [ROLE, USER])).toBe(listed);
  });
});
