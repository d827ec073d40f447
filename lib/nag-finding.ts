import { type IResolvable, Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * Renders an ARN (possibly containing tokens) the way cdk-nag prints it in finding ids such as
 * `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:user/*]`, so an acknowledgement
 * names exactly the resource it covers, whatever account the stack is synthesized for.
 */
export function nagResourceId(scope: IConstruct, arn: string | IResolvable): string {
  return flatten(Stack.of(scope).resolve(arn));
}

function flatten(node: unknown): string {
  if (node === undefined) return '';
  if (typeof node === 'string') return node.replace(/\$\{/g, '<').replace(/}/g, '>');
  if (node !== null && typeof node === 'object') {
    const obj = node as Record<string, unknown>;
    const join = obj['Fn::Join'];
    if (Array.isArray(join)) {
      const [delimiter, items] = join as [string, unknown[]];
      return items.map(flatten).join(delimiter);
    }
    if (obj['Fn::Sub'] !== undefined) return flatten(obj['Fn::Sub']);
    const getAtt = obj['Fn::GetAtt'];
    if (Array.isArray(getAtt)) return `<${flatten(getAtt[0])}.${flatten(getAtt[1])}>`;
    if (obj['Fn::ImportValue'] !== undefined) return flatten(obj['Fn::ImportValue']);
    if (obj.Ref !== undefined) return `<${flatten(obj.Ref)}>`;
  }
  return JSON.stringify(node);
}
