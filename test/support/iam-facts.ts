import {
  GetLoginProfileCommand,
  type IAMClient,
  ListAccessKeysCommand,
  ListAttachedUserPoliciesCommand,
  ListGroupsForUserCommand,
  ListUserPoliciesCommand,
  NoSuchEntityException,
} from '@aws-sdk/client-iam';
import type { AwsClientStub } from 'aws-sdk-client-mock';

/** The error IAM returns for a user, group, policy or login profile that does not exist. */
export function noSuchEntity(what = 'The user with name svc cannot be found.'): NoSuchEntityException {
  return new NoSuchEntityException({ message: what, $metadata: { httpStatusCode: 404 } });
}

/**
 * IAM answers for a key's user that holds nothing beyond its keys: no policies, no groups, no access keys,
 * no console password. Tests that are not about user facts start from this and override what they need.
 */
export function answerPlainUser(iam: AwsClientStub<IAMClient>): void {
  iam.on(ListAttachedUserPoliciesCommand).resolves({ AttachedPolicies: [], IsTruncated: false });
  iam.on(ListUserPoliciesCommand).resolves({ PolicyNames: [], IsTruncated: false });
  iam.on(ListGroupsForUserCommand).resolves({ Groups: [], IsTruncated: false });
  iam.on(ListAccessKeysCommand).resolves({ AccessKeyMetadata: [], IsTruncated: false });
  iam.on(GetLoginProfileCommand).rejects(noSuchEntity('Login Profile for User svc cannot be found.'));
}
